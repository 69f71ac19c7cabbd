// Sign in: check the key against the API, keep it in sessionStorage, go on.
"use strict";

(function () {
  const form = document.getElementById("login-form");
  const input = document.getElementById("api-key");
  const error = document.getElementById("login-error");
  const params = new URLSearchParams(location.search);
  const next = params.get("next");
  const target = next && next.startsWith("/ui/") ? next : "/ui/sessions";

  async function tryKey(key) {
    const response = await fetch("/api/sessions", { headers: { "X-Api-Key": key } });
    if (response.status === 401) throw new Error("That key is not right.");
    if (!response.ok) throw new Error(`The server answered ${response.status}.`);
    sessionStorage.setItem(W.KEY, key);
    location.replace(target);
  }

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  // The key itself, or the whole sign-in link pasted into the field.
  function keyOf(value) {
    const found = value.trim().match(/#key=([^&\s]+)/);
    return found ? decodeURIComponent(found[1]) : value.trim();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    error.hidden = true;
    tryKey(keyOf(input.value)).catch((e) => showError(e.message));
  });

  // `wasync demo` (and a first `wasync serve`) print a link with #key=...: sign in with
  // it, then drop it from the address bar and the history. Pasted into the address bar
  // of a login tab already open, only the fragment changes: no page load, an event.
  function fromAddress() {
    const match = location.hash.match(/^#key=(.+)$/);
    if (!match) return false;
    history.replaceState(null, "", location.pathname + location.search);
    input.value = decodeURIComponent(match[1]);
    error.hidden = true;
    tryKey(input.value).catch((e) => showError(e.message));
    return true;
  }
  window.addEventListener("hashchange", fromAddress);
  if (fromAddress()) return;
  fetch("/health").then((r) => r.json()).then((health) => {
    if (health.auth === false) {
      sessionStorage.setItem("wasync.authOff", "1");
      location.replace(target);
    }
  }).catch(() => {});
  input.focus();
})();
