/* consentmw: progressive enhancement of the server-rendered banner. Vanilla, no build step.
   Without this file everything still works through plain form posts; with it, choices are
   sent as JSON without a reload, the settings open in an in-page dialog (fetched from the
   server when first wanted, so pages do not carry it), scripts marked
   type="text/plain" data-consent-category="..." run once allowed, and window.consentmw exists. */
(function () {
  "use strict";
  // Configuration and state come only from the snippet that holds this very script: page
  // content (a comment) can carry an element with the same id or data-* attributes. Every
  // URL used is a same-origin path under the prefix this file was served from
  // ({prefix}/static/{digest}/consent.js), whatever the markup says.
  var me = document.currentScript;
  var root = me && me.closest("[data-consentmw-snippet]");
  var own = me && /^(\/[^?#]*)(\/static\/[^/?#]+\/)consent\.js$/.exec(sameOrigin(me.src));
  if (!root || !own || root.cmwStarted) return;
  root.cmwStarted = true;
  var prefix = own[1];
  var files = own[1] + own[2]; // {prefix}/static/{digest}/: every static file shares the digest
  var optional = words(root.getAttribute("data-categories"));
  var lang = root.getAttribute("lang") || "";
  var nonce = me.nonce || "";
  var gaAdvanced = root.getAttribute("data-ga-mode") === "advanced";
  var banner = root.querySelector("[data-cmw-banner]");
  var dialog = root.querySelector("[data-cmw-dialog]"); // an older site template may carry it
  var loading = null;
  var reopen = root.querySelector("#cmw-reopen");
  var message = banner ? banner.getAttribute("data-msg") : "";
  var status = document.createElement("p"); // the live region exists before it has news
  status.className = "cmw-sr";
  status.setAttribute("role", "status");
  root.appendChild(status);
  var listeners = [];
  var opener = null;
  var queue = Promise.resolve();
  var granted0 = words(root.getAttribute("data-granted"));
  var state = {
    decided: !root.hasAttribute("data-undecided"),
    signal: root.getAttribute("data-signal") || null,
    categories: {}
  };
  optional.forEach(function (c) { state.categories[c] = granted0.indexOf(c) >= 0; });

  // The path of a same-origin URL, or "" for any other origin.
  function sameOrigin(url) {
    var u = new URL(url, location.href);
    return u.origin === location.origin ? u.pathname : "";
  }
  function words(text) { return (text || "").split(" ").filter(Boolean); }
  function all(sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); }
  function allowed(cat) { return cat === "necessary" || state.categories[cat] === true; }
  function granted() { return optional.filter(allowed); }
  function get() {
    var cats = { necessary: true };
    optional.forEach(function (c) { cats[c] = allowed(c); });
    return { decided: state.decided, signal: state.signal, categories: cats };
  }

  // -- scripts written as <script type="text/plain" data-consent-category="..."> --
  function run(old) {
    return new Promise(function (done) {
      var s = document.createElement("script");
      for (var i = 0; i < old.attributes.length; i++) {
        var a = old.attributes[i];
        if (a.name !== "type" && a.name !== "nonce" && a.name !== "data-type") {
          s.setAttribute(a.name, a.value);
        }
      }
      if (old.getAttribute("data-type")) s.type = old.getAttribute("data-type");
      if (old.nonce) s.nonce = old.nonce;
      if (s.src) {
        s.async = false; // keep document order among external scripts
        s.onload = s.onerror = function () { done(); };
      } else {
        s.text = old.text;
      }
      old.parentNode.replaceChild(s, old);
      if (!s.src) done();
    });
  }
  function activate() {
    all('script[type="text/plain"][data-consent-category]').forEach(function (old) {
      var cats = old.getAttribute("data-consent-category").split(/\s+/).filter(Boolean);
      if (old.cmwQueued || !cats.every(allowed)) return;
      old.cmwQueued = true;
      queue = queue.then(function () { return run(old); });
    });
  }

  // Google Analytics: one consent update per decision. The loader is in no page: this file
  // loads it, in basic mode only after analytics is granted (so nothing from Google comes
  // before), in advanced mode at once (it sets Consent Mode's all-denied defaults before
  // gtag.js). It goes inside the snippet, where it finds its configuration, and only from
  // beside this file (no URL from the markup).
  function analytics() {
    if (typeof window.consentmwGa === "function") window.consentmwGa(granted());
    else if (root.getAttribute("data-ga") && !analytics.loaded &&
             (gaAdvanced || allowed("analytics"))) {
      analytics.loaded = true;
      var s = document.createElement("script");
      s.src = files + "consent-ga.js";
      if (nonce) s.nonce = nonce;
      root.appendChild(s);
    }
  }

  function emit() {
    var detail = get();
    listeners.slice().forEach(function (fn) {
      try { fn(detail); } catch (e) { setTimeout(function () { throw e; }); }
    });
    document.dispatchEvent(new CustomEvent("consentmw:change", { detail: detail }));
  }

  function apply() {
    root.setAttribute("data-granted", granted().join(" "));
    if (state.decided) root.removeAttribute("data-undecided");
    else root.setAttribute("data-undecided", "");
    if (state.signal) root.setAttribute("data-signal", state.signal);
    else root.removeAttribute("data-signal");
    if (dialog) all('input[name="category"]', dialog).forEach(function (b) { b.checked = allowed(b.value); });
    activate();
  }

  function hideBanner() {
    if (!banner) return;
    var hadFocus = banner.contains(document.activeElement);
    banner.parentNode.removeChild(banner);
    banner = null;
    document.documentElement.style.scrollPaddingBottom = "";
    if (hadFocus && reopen) reopen.focus();
  }

  // A decision from the server (POST answer) or a fresher state (bfcache restore).
  function update(json, decision) {
    var before = JSON.stringify(get());
    state.decided = !!json.decided;
    state.signal = json.signal || null;
    optional.forEach(function (c) { state.categories[c] = !!(json.categories || {})[c]; });
    if (!decision && before === JSON.stringify(get())) return;
    apply();
    analytics();
    if (state.decided || state.signal) hideBanner();
    emit();
  }

  function decide(action, categories, source) {
    return fetch(prefix, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      // The language the texts were shown in, for the receipt (the server accepts only its
      // own languages); where the choice was made (banner, preferences), else "api".
      body: JSON.stringify({ action: action, categories: categories || [], source: source || "api", lang: lang })
    }).then(function (r) {
      if (!r.ok) throw new Error("consentmw: POST " + prefix + " answered " + r.status);
      return r.json();
    }).then(function (json) {
      update(json, true);
      return get();
    });
  }

  function say() {
    status.textContent = "";
    setTimeout(function () { status.textContent = message || ""; }, 50);
  }

  // -- the settings dialog: {prefix}/dialog, rendered in the snippet's language with the
  // visitor's choices ticked, fetched once (on hover or focus of a settings button, or on
  // opening) and kept in the snippet. Cookies of withdrawn categories are not this script's
  // job: the answer to every decision deletes them, HttpOnly ones and parent domains too.
  function load() {
    if (dialog) return Promise.resolve(dialog);
    if (!loading) {
      // No page address: the dialog's form returns to the page its Referer names.
      var url = prefix + "/dialog?lang=" + encodeURIComponent(lang);
      loading = fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) {
          if (!r.ok) throw new Error("consentmw: GET " + prefix + "/dialog answered " + r.status);
          return r.text();
        })
        .then(function (html) {
          var found = new DOMParser().parseFromString(html, "text/html")
            .querySelector("dialog[data-cmw-dialog]");
          if (!found) throw new Error("consentmw: no dialog in " + prefix + "/dialog");
          if (!dialog) wire(root.appendChild(document.adoptNode(found)));
          return dialog;
        });
      loading.catch(function () { loading = null; }); // the next try fetches again
    }
    return loading;
  }

  function show() {
    if (dialog && dialog.open) return Promise.resolve();
    opener = document.activeElement;
    return load().then(function () {
      if (dialog.open) return;
      apply();
      dialog.showModal();
    }, function () {
      // The same page the settings button leads to without JavaScript.
      location.assign(prefix + "/preferences?lang=" + encodeURIComponent(lang));
    });
  }

  function wire(node) {
    dialog = node;
    message = dialog.getAttribute("data-msg") || message;
    dialog.addEventListener("close", function () {
      var back = opener && opener.isConnected ? opener : reopen;
      opener = null;
      if (back) back.focus();
    });
    // Keep Tab inside the open dialog (the page behind it is inert).
    dialog.addEventListener("keydown", function (e) {
      if (e.key !== "Tab") return;
      var f = all("button, [href], input, summary, [tabindex]:not([tabindex='-1'])", dialog)
        .filter(function (el) { return !el.disabled && el.offsetParent !== null; });
      var first = f[0], last = f[f.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    dialog.addEventListener("click", function (e) {
      if (e.target.closest("[data-cmw-close]")) dialog.close();
    });
  }
  if (dialog) wire(dialog);
  // Prefetch when a settings button is hovered or reached by keyboard (not when this script
  // moves focus to it after a click on the banner: most visitors stop there).
  all("[data-cmw-open]", root).forEach(function (b) {
    var prefetch = function () { load().catch(function () {}); };
    b.addEventListener("pointerenter", prefetch);
    b.addEventListener("focus", function () { if (b.matches(":focus-visible")) prefetch(); });
  });

  document.addEventListener("submit", function (e) {
    var form = e.target, button = e.submitter;
    if (!root.contains(form) && !(banner && banner.contains(form))) return;
    if (form.cmwNative) return;
    if (button && button.hasAttribute("data-cmw-open")) {
      e.preventDefault();
      show();
      return;
    }
    var action = button && button.name === "action" ? button.value : "save";
    var source = form.querySelector('input[name="source"]');
    var cats = all('input[name="category"]:checked', form).map(function (b) { return b.value; });
    e.preventDefault();
    decide(action, cats, source ? source.value : "banner").then(function () {
      if (dialog && dialog.open) dialog.close();
      say();
    }, function () {
      // Fall back to the plain form post (the last "action" field wins on the server).
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "action";
      input.value = action;
      form.appendChild(input);
      form.cmwNative = true;
      form.submit();
    });
  });

  // Back/forward cache: the page may show an older state than the cookie now holds.
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) return;
    fetch(prefix, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (json) { update(json, false); }, function () {});
  });

  // The banner goes first in the document so keyboard and screen-reader users meet it first;
  // it is fixed, so nothing on the page moves. Scroll padding keeps focused page content
  // from hiding behind it.
  if (banner && document.body) {
    document.body.insertBefore(banner, document.body.firstChild);
    var pad = function () {
      if (banner) document.documentElement.style.scrollPaddingBottom = banner.offsetHeight + "px";
    };
    pad();
    window.addEventListener("resize", pad);
  }

  window.consentmw = {
    get: get,
    set: function (categories) { return decide("save", categories, "api"); },
    show: show,
    on: function (event, fn) {
      if (event !== "change" || typeof fn !== "function") throw new Error('consentmw.on("change", fn)');
      listeners.push(fn);
      return function () { listeners = listeners.filter(function (x) { return x !== fn; }); };
    }
  };

  apply();
  // No page carries the loader: load it now (advanced mode, or analytics already granted).
  if (typeof window.consentmwGa !== "function") analytics();
  // Global Privacy Control refuses, like the server's Sec-GPC: never consents.
  if (navigator.globalPrivacyControl === true && !state.decided && !state.signal) {
    decide("reject_all", [], "api").catch(function () {});
  }
  document.dispatchEvent(new CustomEvent("consentmw:ready", { detail: get() }));
})();
