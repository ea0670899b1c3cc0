/* Test stand-in for https://www.googletagmanager.com/gtag/js: processes dataLayer like the
   real tag, records consent calls in order into window.__gtag, and, only while
   analytics_storage is granted, sets _ga / _ga_<id> on the parent domain and sends a hit. */
(function () {
  var w = window, dl = (w.dataLayer = w.dataLayer || []);
  var log = (w.__gtag = w.__gtag || []);
  var src = document.currentScript ? document.currentScript.src : "";
  var m = /[?&]id=([^&]+)/.exec(src);
  var id = m ? decodeURIComponent(m[1]) : "";
  var first = dl[0];
  log.push(["loaded", dl.length, !!first && first[0] === "consent" && first[1] === "default"]);
  var consent = {};
  function domain() {
    var h = location.hostname;
    if (/^[\d.]+$/.test(h) || h.indexOf(".") < 0) return "";
    return "; Domain=" + h.split(".").slice(-2).join(".");
  }
  function hit() {
    if (consent.analytics_storage !== "granted" || w["ga-disable-" + id]) return;
    var now = Math.floor(Date.now() / 1000), tail = "; Path=/; Max-Age=63072000" + domain();
    if (!/(^|; )_ga=/.test(document.cookie)) {
      document.cookie = "_ga=GA1.1." + Math.floor(Math.random() * 1e9) + "." + now + tail;
    }
    document.cookie = "_ga_" + id.replace(/^G-/, "") + "=GS1.1." + now + tail;
    fetch("https://region1.google-analytics.com/g/collect?v=2&tid=" + id, {
      method: "POST", mode: "no-cors", keepalive: true
    }).catch(function () {});
  }
  function handle(a) {
    if (!a || typeof a.length !== "number") return;
    var cmd = a[0];
    if (cmd === "consent") {
      log.push(["consent", a[1], JSON.parse(JSON.stringify(a[2] || {}))]);
      for (var k in a[2]) consent[k] = a[2][k];
      if (a[1] === "update") hit();
    } else if (cmd === "config") {
      log.push(["config", a[1]]);
      hit();
    } else {
      log.push([String(cmd)]);
    }
  }
  dl.forEach(handle);
  var push = dl.push;
  dl.push = function () {
    for (var i = 0; i < arguments.length; i++) handle(arguments[i]);
    return push.apply(dl, arguments);
  };
})();
