// Small helpers shared by the chat page's modules: translated strings, URLs, requests,
// text direction. No state lives here.

/** Translated strings from <div id="chat-i18n" data-...> (chat.html); {} on other pages. */
export const i18n = document.getElementById("chat-i18n")?.dataset ?? {};

/** "{input} in · {output} out" with values filled in; unknown keys are left as written. */
export function format(template, values) {
  return String(template ?? "").replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

/** The CSRF token: from the cookie, else from a form's hidden field. */
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value ?? "";
}

/** A URL from a pattern made with {% url 'name' 0 %}: the "/0/" segment becomes the id. */
export function urlFor(pattern, id) {
  return pattern.replace("/0/", `/${id}/`);
}

/** URL-encoded form fields; an array value becomes one field per item (repeated key). */
export function formBody(fields) {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    for (const item of [].concat(value)) if (item !== undefined && item !== null) body.append(key, item);
  }
  return body;
}

/** POST form fields (application/x-www-form-urlencoded) with the CSRF token; a fetch Promise. */
export function postForm(url, fields = {}, signal = undefined) {
  return fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
      "X-CSRFToken": csrfToken(),
      "X-Requested-With": "fetch",
    },
    body: formBody(fields),
    credentials: "same-origin",
    signal,
  });
}

/** The reason a refused request gives: its JSON {"error": "..."}, else "503 Service Unavailable". */
export async function errorText(response) {
  try {
    const data = await response.clone().json();
    if (data && typeof data.error === "string" && data.error) return data.error;
  } catch {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`.trim();
}

// The base direction of a text by its first strong character (UAX #9, rule P2), skipping
// code and links; the same rule as chat/textdir.py on the server.
const RTL_SCRIPT =
  /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}]/u;

/** "rtl" or "ltr" for a text (its first 2,000 characters are enough). */
export function textDirection(text) {
  const prose = text.slice(0, 2000).replace(/```[\s\S]*?(```|$)|`[^`]*`|https?:\/\/\S+/g, " ");
  const first = prose.match(/\p{L}/u);
  return first && RTL_SCRIPT.test(first[0]) ? "rtl" : "ltr";
}

/** A Promise resolved after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fresh copy of the first element of <template id="...">. */
export function fromTemplate(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}
