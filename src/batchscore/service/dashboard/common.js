// What every dashboard page shares: the API root, the token field, GET with the token,
// and a small element helper. Loaded before the page's own script; no build step.
"use strict";

const API = "/api/v1";
const $ = (sel) => document.querySelector(sel);
const tokenInput = $("#token");

// The token is kept in localStorage; `onChange` runs when the user enters another one.
function bindToken(onChange) {
  tokenInput.value = localStorage.getItem("batchscore-token") || "";
  tokenInput.addEventListener("change", () => {
    localStorage.setItem("batchscore-token", tokenInput.value.trim());
    onChange();
  });
}

async function get(path) {
  const token = tokenInput.value.trim();
  const response = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
