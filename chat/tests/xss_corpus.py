"""Hostile strings for the XSS tests: each, if it ran, would set ``window.__xss`` or open
a dialog. Shared by the sanitizer tests and the browser tests."""

from __future__ import annotations

PAYLOADS: list[str] = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 2">',
    '<svg onload="window.__xss = 3"><circle r=1 /></svg>',
    "<svg><script>window.__xss = 4</script></svg>",
    "[click me](javascript:window.__xss=5)",
    "[click](JaVaScRiPt:alert(6))",
    '<a href="javascript:window.__xss = 7">link</a>',
    "![img](javascript:window.__xss=8)",
    '<iframe src="javascript:window.__xss=9"></iframe>',
    '<iframe srcdoc="<script>parent.__xss=10</script>"></iframe>',
    '<object data="data:text/html,<script>parent.__xss=11</script>"></object>',
    "[data](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX194c3M9MTI8L3NjcmlwdD4=)",
    '<style>body{background:url("javascript:window.__xss=13")}</style>',
    '<div style="background-image:url(javascript:window.__xss=14)">css</div>',
    '<details open ontoggle="window.__xss = 15">x</details>',
    '<math><mtext><table><mglyph><style><img src=x onerror="window.__xss=16">',
    '<form action="javascript:window.__xss=17"><button>go</button></form>',
    '<input autofocus onfocus="window.__xss = 18">',
    "```html\n<script>window.__xss = 19</script>\n```",
    '<body onload="window.__xss = 20">',
    '"><script>window.__xss = 21</script>',
    "</textarea><script>window.__xss = 22</script>",
    '<meta http-equiv="refresh" content="0;url=javascript:window.__xss=23">',
    '<base href="javascript:window.__xss=24//">',
    '<a href="&#106;avascript:window.__xss=25">entity</a>',
    "[x](&#x6A;avascript:window.__xss=26)",
    '<noscript><p title="</noscript><img src=x onerror=window.__xss=27>">',
    "<template><script>window.__xss=28</script></template>",
    "{{ 7*7 }} {% now 'Y' %} <%= 7*7 %>",
    "<scr<script>ipt>window.__xss = 29</script>",
]

# Math-shaped attacks: LaTeX commands that carry links or styles, HTML inside formulas,
# MathML written by hand (escaped as any HTML), and character references that decode to
# markup inside \text.
MATH_PAYLOADS: list[str] = [
    r"$\href{javascript:alert(1)}{x}$",
    r"$\href{https://example.com/}{x}$",
    r"\(<img src=x onerror=alert(1)>\)",
    r"\[<svg onload=alert(1)>\]",
    r"$$\text{<script>alert(1)</script>}$$",
    r"$\text{</math><img src=x onerror=alert(1)>}$",
    r"$\text{&#x3C;img src=x onerror=alert(1)&#x3E;}$",
    r"$\mathrm{<iframe src=javascript:alert(1)>}$",
    r"$\style{background:url(javascript:alert(1))}{x}$",
    r"$\class{x}{y}\cssId{z}{w}$",
    r"$\color{red} onmouseover=alert(1) x$",
    r"$\bbox[background:url(javascript:alert(1))]{x}$",
    r"$\unicode{x3C}script\unicode{x3E}alert(1)$",
    r"\(\href{data:text/html,<script>alert(1)</script>}{x}\)",
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<math href="javascript:alert(1)"><mtext>click</mtext></math>',
    "<math><mtext><script>alert(1)</script></mtext></math>",
    '<math><annotation-xml encoding="text/html"><img src=x onerror=alert(1)></annotation-xml>'
    "</math>",
    '$x$<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction>',
]

PAYLOADS += MATH_PAYLOADS

# A single message holding every payload, one per paragraph.
ALL_IN_ONE = "\n\n".join(PAYLOADS)
