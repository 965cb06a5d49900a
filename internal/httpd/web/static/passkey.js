// Passkey ceremonies for Ferry's pages. The server keeps each ceremony's
// state; this module only carries the options to the browser's WebAuthn API
// and the authenticator's answer back, as form fields (with the page's CSRF
// token) so the same checks apply as to every form. data-base="/admin" on
// the element runs the ceremony against the admin listener's routes.

const b64 = {
  decode(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(s + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buf) {
    let bin = "";
    for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

async function post(url, fields) {
  const res = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
  let body = {};
  try {
    body = await res.json();
  } catch {
    body = { error: "Ferry could not complete the request (" + res.status + ")." };
  }
  if (!res.ok) throw new Error(body.error || "The passkey was not accepted.");
  return body;
}

function creationOptions(o) {
  const pk = o.publicKey;
  pk.challenge = b64.decode(pk.challenge);
  pk.user.id = b64.decode(pk.user.id);
  for (const c of pk.excludeCredentials || []) c.id = b64.decode(c.id);
  return { publicKey: pk };
}

function requestOptions(o) {
  const pk = o.publicKey;
  pk.challenge = b64.decode(pk.challenge);
  for (const c of pk.allowCredentials || []) c.id = b64.decode(c.id);
  return { publicKey: pk };
}

function credentialJSON(cred) {
  const r = cred.response;
  const out = {
    id: cred.id,
    rawId: b64.encode(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults(),
    response: { clientDataJSON: b64.encode(r.clientDataJSON) },
  };
  if (r.attestationObject) {
    out.response.attestationObject = b64.encode(r.attestationObject);
    out.response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    out.response.authenticatorData = b64.encode(r.authenticatorData);
    out.response.signature = b64.encode(r.signature);
    if (r.userHandle) out.response.userHandle = b64.encode(r.userHandle);
  }
  return JSON.stringify(out);
}

const ceremonies = {
  async login(el) {
    const csrf = el.dataset.csrf || "";
    const base = el.dataset.base || "";
    const next = new URLSearchParams(location.search).get("next") || "/";
    const opts = await post(base + "/login/passkey/begin", { csrf });
    const cred = await navigator.credentials.get(requestOptions(opts));
    return post(base + "/login/passkey/finish", { csrf, next, credential: credentialJSON(cred) });
  },
  async mfa(el) {
    const csrf = el.dataset.csrf || "";
    const base = el.dataset.base || "";
    const opts = await post(base + "/login/mfa/passkey/begin", { csrf });
    const cred = await navigator.credentials.get(requestOptions(opts));
    return post(base + "/login/mfa/passkey/finish", { csrf, credential: credentialJSON(cred) });
  },
  async register(el) {
    const csrf = el.dataset.csrf || "";
    const base = el.dataset.base || "";
    const name = el.querySelector("input[name=name]").value;
    const opts = await post(base + "/account/passkeys/begin", { csrf });
    const cred = await navigator.credentials.create(creationOptions(opts));
    return post(base + "/account/passkeys/finish", { csrf, name, credential: credentialJSON(cred) });
  },
};

function showError(el, msg) {
  const p = el.parentElement.parentElement.querySelector("[data-passkey-error]") || document.querySelector("[data-passkey-error]");
  if (p) {
    p.textContent = msg;
    p.hidden = false;
  }
}

for (const el of document.querySelectorAll("[data-passkey]")) {
  if (!window.PublicKeyCredential) {
    el.hidden = true;
    continue;
  }
  const run = async (ev) => {
    ev.preventDefault();
    try {
      const res = await ceremonies[el.dataset.passkey](el);
      location.assign(res.redirect || "/");
    } catch (err) {
      showError(el, err.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : err.message);
    }
  };
  el.addEventListener(el.tagName === "FORM" ? "submit" : "click", run);
}
