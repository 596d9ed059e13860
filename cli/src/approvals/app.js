// The reviewers' page. Every value from a request (the command above all: an agent chose it)
// is put in the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("sluice-token") || "";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function when(secs) {
  return new Date(secs * 1000).toLocaleString();
}

function reviews(entry) {
  return entry.reviews
    .map((r) => `${r.approve ? "approved" : "denied"} by ${r.reviewer.user}${r.comment ? ": " + r.comment : ""}`)
    .join("; ");
}

function card(entry) {
  const r = entry.request;
  const c = el("div", undefined, "card");
  c.id = "request-" + r.id;
  c.dataset.id = r.id;
  c.append(el("div", `${r.user} → ${r.target} (${r.protocol})`, "who"));
  c.append(el("pre", r.command, "command"));
  const approvers = [...r.approvers.users, ...r.approvers.groups.map((g) => "group " + g)];
  c.append(el("div", `rule ${r.rule || "(default)"}: ${r.reason}`, "meta reason"));
  c.append(el("div", `needs ${r.count} approval(s)` + (approvers.length ? ` from ${approvers.join(", ")}` : "") +
    (r.allow_self ? "" : "; not the requester") + ` · expires ${when(r.expires_at)} · ${r.id}`, "meta"));
  if (entry.reviews.length) c.append(el("div", reviews(entry), "meta reviews"));
  const comment = el("textarea");
  comment.placeholder = "comment (optional)";
  comment.className = "comment";
  c.append(comment);
  const approve = el("button", "Approve", "approve");
  const deny = el("button", "Deny", "deny");
  const act = (verb) => async () => {
    approve.disabled = deny.disabled = true;
    try {
      const e = await api("POST", `/api/requests/${encodeURIComponent(r.id)}/${verb}`, { comment: comment.value });
      $("message").textContent = `${r.id}: ${e.state}`;
      $("message").className = "";
    } catch (err) {
      $("message").textContent = `${r.id}: ${err.message}`;
      $("message").className = "error";
    }
    await refresh();
  };
  approve.onclick = act("approve");
  deny.onclick = act("deny");
  c.append(el("div"), approve, deny);
  return c;
}

async function refresh() {
  let data;
  try {
    data = await api("GET", "/api/requests");
  } catch (err) {
    $("message").textContent = err.message;
    $("message").className = "error";
    return;
  }
  const pending = $("pending");
  // Keep cards (and comments being typed) for requests still pending.
  const want = new Set(data.requests.filter((e) => e.state === "pending").map((e) => e.request.id));
  for (const c of [...pending.children]) if (!want.has(c.dataset.id)) c.remove();
  for (const e of data.requests.filter((e) => e.state === "pending")) {
    if (!document.getElementById("request-" + e.request.id)) pending.append(card(e));
  }
  if (!want.size && !pending.querySelector(".none")) pending.append(el("p", "Nothing is waiting.", "none"));
  if (want.size) pending.querySelectorAll(".none").forEach((n) => n.remove());
  const body = $("history").querySelector("tbody");
  body.replaceChildren(...data.requests.filter((e) => e.state !== "pending").map((e) => {
    const tr = el("tr");
    tr.dataset.id = e.request.id;
    const cmd = el("td");
    cmd.append(el("code", e.request.command));
    tr.append(el("td", when(e.request.created_at)), el("td", e.state, "state"), el("td", e.request.user),
      el("td", e.request.target), cmd, el("td", reviews(e)));
    return tr;
  }));
}

async function signIn() {
  try {
    const me = await api("GET", "/api/me");
    sessionStorage.setItem("sluice-token", token);
    $("whoami").textContent = me.user + (me.groups.length ? ` (${me.groups.join(", ")})` : "");
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    await refresh();
    setInterval(refresh, 2000);
  } catch (err) {
    $("login-error").textContent = err.message;
    sessionStorage.removeItem("sluice-token");
  }
}

$("signin").onclick = () => {
  token = $("token").value.trim();
  signIn();
};
$("token").addEventListener("keydown", (e) => { if (e.key === "Enter") $("signin").click(); });
$("logout").onclick = () => {
  sessionStorage.removeItem("sluice-token");
  location.reload();
};
if (token) signIn();
