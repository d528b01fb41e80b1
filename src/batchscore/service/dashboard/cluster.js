// The cluster panel (issue 19): GET /api/v1/cluster every 5 seconds, on its own timer.
// Every value is shown as text (el() sets textContent): node and worker names are data.
"use strict";

function clusterResources(r) {
  return `${r.cpus} CPU, ${r.gpus} GPU, ${(r.memory_bytes / 2 ** 30).toFixed(1)} GiB`;
}

function clusterNodeRow(node) {
  const tr = el("tr", null, `node-${node.state}`);
  tr.dataset.node = node.node_id;
  tr.appendChild(el("td", node.node_id.slice(0, 12) + (node.head ? " (head)" : "")));
  tr.appendChild(el("td", node.address));
  tr.appendChild(el("td", node.state, `state state-${node.state}`));
  tr.appendChild(el("td", clusterResources(node.resources)));
  tr.appendChild(el("td", node.workers.map((w) =>
    `${w.worker} ${w.state}${w.job_id ? ` (job ${w.job_id}: ${w.minibatches_done})` : ""}`).join("; ")));
  tr.appendChild(el("td", node.reruns.map((r) =>
    `job ${r.job_id} #${r.minibatch} (${r.how})`).join("; "), node.reruns.length ? "error" : ""));
  return tr;
}

function clusterWorkerRow(w) {
  const tr = el("tr");
  tr.appendChild(el("td", w.worker || "-"));
  tr.appendChild(el("td", "local"));
  tr.appendChild(el("td", w.state, `state state-${w.state}`));
  tr.appendChild(el("td", ""));
  tr.appendChild(el("td", `job ${w.job_id} (runner ${w.runner})`));
  tr.appendChild(el("td", ""));
  return tr;
}

async function refreshCluster() {
  const summary = $("#cluster-summary");
  try {
    const c = await get(`${API}/cluster`);
    const alive = c.nodes.filter((n) => n.state === "alive").length;
    summary.textContent = c.executor === "ray"
      ? `ray${c.address ? " at " + c.address : ""}: ${alive}/${c.nodes.length} nodes alive`
      : `${c.executor}: ${c.workers.length} worker processes`;
    if (c.note) summary.textContent += ` (${c.note})`;
    $("#cluster tbody").replaceChildren(...c.nodes.map(clusterNodeRow),
                                        ...c.workers.map(clusterWorkerRow));
  } catch (err) {
    summary.textContent = `cannot read the cluster: ${err.message}`;
  }
}

refreshCluster();
setInterval(refreshCluster, 5000);
