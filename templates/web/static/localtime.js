// Shows each <time datetime="…" data-local> in the visitor's own time zone and language.
(function () {
  var lang = document.documentElement.lang || "en";
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  var format = new Intl.DateTimeFormat(lang, {weekday: "long", day: "numeric", month: "long",
                                              hour: "2-digit", minute: "2-digit", hourCycle: "h23",
                                              timeZoneName: "short"});
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) { el.textContent = format.format(when); }
  });
  document.querySelectorAll("[data-zone-note]").forEach(function (el) {
    el.textContent = el.getAttribute("data-zone-note").replace("{zone}", zone);
  });
})();
