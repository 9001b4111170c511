// Keeps a dashboard page current: every few seconds it fetches the page again and swaps in each element
// marked data-live (the figures), leaving alone one that holds the keyboard focus (a form being filled).
(function () {
  var marked = document.querySelectorAll("[data-live]");
  if (!marked.length || !window.fetch || !window.DOMParser) { return; }
  var setting = document.querySelector("[data-poll]");
  var every = parseInt((setting && setting.getAttribute("data-poll")) || "2000", 10);
  var busy = false;
  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(window.location.href, {credentials: "same-origin", cache: "no-store", redirect: "manual",
                                 headers: {"X-Requested-With": "surveybot-live"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var next = old.id && fresh.getElementById(old.id);
          if (!next || old.contains(document.activeElement) || old.innerHTML === next.innerHTML) { return; }
          old.innerHTML = next.innerHTML;
        });
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(refresh, every);
})();
