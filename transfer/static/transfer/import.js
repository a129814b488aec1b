// The import form (transfer/templates/transfer/transfer.html): sends the file as the
// request body, shows the upload's progress, then the import's, read from the NDJSON
// lines the server streams ({"stage", "done", "total"}, then {"finished", "result_url"}
// or {"errors"}), and opens the result page. Without this module the form posts the
// file as multipart and the server answers with the result page.

const form = document.getElementById("import-form");

if (form) {
  const input = document.getElementById("import-file");
  const button = document.getElementById("import-button");
  const box = document.getElementById("import-progress");
  const bar = document.getElementById("import-bar");
  const status = document.getElementById("import-status");
  const errorBox = document.getElementById("import-errors");
  const text = form.dataset;

  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));

  const showErrors = (messages) => {
    const list = document.createElement("ul");
    for (const message of messages) {
      const item = document.createElement("li");
      item.textContent = message;
      list.append(item);
    }
    errorBox.replaceChildren(list);
    errorBox.hidden = false;
    box.hidden = true;
    button.disabled = false;
    input.disabled = false;
  };

  const show = (message, value) => {
    box.hidden = false;
    status.textContent = message;
    if (value === null) bar.removeAttribute("value");
    else bar.value = value;
  };

  const onLine = (data) => {
    if (data.errors) {
      showErrors(data.errors);
      return;
    }
    if (data.finished) {
      show(text.finished, 100);
      window.location.assign(data.result_url);
      return;
    }
    if (data.stage === "reading") {
      show(text.reading, null);
    } else {
      // Checking is the first half of the bar, saving the second.
      const share = data.total ? data.done / data.total : 0;
      const base = data.stage === "saving" ? 50 : 0;
      show(fill(data.stage === "saving" ? text.saving : text.preparing, data), base + share * 50);
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = input.files?.[0];
    if (!file) {
      showErrors([text.choose]);
      return;
    }
    errorBox.hidden = true;
    button.disabled = true;
    input.disabled = true;
    show(fill(text.uploading, { percent: 0 }), 0);

    const request = new XMLHttpRequest();
    let seen = 0;
    let ended = false;
    const readLines = () => {
      // Complete lines only: the last one may still be arriving.
      const body = request.responseText;
      const end = body.lastIndexOf("\n");
      if (end < seen) return;
      for (const line of body.slice(seen, end).split("\n")) {
        if (!line.trim()) continue;
        try {
          const data = JSON.parse(line);
          if (data.errors || data.finished) ended = true;
          onLine(data);
        } catch {
          // not a line of ours: the end handler reports the failure
        }
      }
      seen = end + 1;
    };
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/x-ndjson");
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.setRequestHeader("X-File-Name", encodeURIComponent(file.name));
    request.setRequestHeader("X-CSRFToken", form.elements.csrfmiddlewaretoken.value);
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((e.loaded / e.total) * 100);
      show(fill(text.uploading, { percent }), percent);
    });
    request.addEventListener("progress", () => {
      if (request.status === 200) readLines();
    });
    request.addEventListener("load", () => {
      if (request.status === 200) {
        readLines();
        if (!ended) showErrors([text.failed]);
        return;
      }
      try {
        showErrors(JSON.parse(request.responseText).errors ?? [text.failed]);
      } catch {
        showErrors([text.failed]);
      }
    });
    request.addEventListener("error", () => showErrors([text.networkError]));
    request.send(file);
  });
  form.dataset.ready = "true"; // the script sends the file from now on (tests wait for it)
}
