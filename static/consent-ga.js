/* consentmw: Google Analytics 4 (gtag.js) with Consent Mode v2. A same-origin file, so a
   strict CSP needs no inline script. Consent "default" (all denied) runs before any Google
   tag, then one "update" per decision. Ad signals stay denied unless a "marketing" category
   exists and is granted. consent.js loads this file: in basic mode once analytics is
   granted, in advanced mode at once. */
(function () {
  "use strict";
  var w = window;
  // Only the snippet holding this script configures it (page content may imitate its
  // markup); a measurement id of another shape is refused.
  var me = document.currentScript;
  var root = me && me.closest("[data-consentmw-snippet]");
  if (!root || typeof w.consentmwGa === "function") return;
  var ga = root.getAttribute("data-ga") || "";
  var id = /^G-[A-Z0-9]{4,20}$/.test(ga) ? ga : "";
  var categories = (root.getAttribute("data-categories") || "").split(" ");
  var advanced = root.getAttribute("data-ga-mode") === "advanced";
  var granted = (root.getAttribute("data-granted") || "").split(" ").filter(Boolean);
  var decided = !root.hasAttribute("data-undecided") || !!root.getAttribute("data-signal");
  if (!id || (!advanced && granted.indexOf("analytics") < 0)) return;

  // An element id="dataLayer" in the page shows up as window.dataLayer: only an array counts.
  if (!Array.isArray(w.dataLayer)) w.dataLayer = [];
  function gtag() { w.dataLayer.push(arguments); }
  w.gtag = gtag;

  function signals(list) {
    var ads = categories.indexOf("marketing") >= 0 && list.indexOf("marketing") >= 0;
    var ad = ads ? "granted" : "denied";
    return {
      analytics_storage: list.indexOf("analytics") >= 0 ? "granted" : "denied",
      ad_storage: ad,
      ad_user_data: ad,
      ad_personalization: ad
    };
  }
  var defaults = signals([]);
  defaults.wait_for_update = 500;
  gtag("consent", "default", defaults);
  gtag("set", "ads_data_redaction", true);
  if (decided) gtag("consent", "update", signals(granted));

  // Called by consent.js after each decision made on this page.
  w.consentmwGa = function (list) {
    var update = signals(list);
    gtag("consent", "update", update);
    // Basic mode: a withdrawal stops gtag.js from sending anything more from this page.
    w["ga-disable-" + id] = !advanced && update.analytics_storage === "denied";
  };

  gtag("js", new Date());
  gtag("config", id);
  var s = document.createElement("script");
  s.async = true;
  s.src = "https://www.googletagmanager.com/gtag/js?id=" + encodeURIComponent(id);
  if (me.nonce) s.nonce = me.nonce;
  document.head.appendChild(s);
})();
