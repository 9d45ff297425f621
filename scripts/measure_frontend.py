"""Measure, in ComfyUI's real frontend (headless Chromium), the size every node of the example workflows needs
(litegraph's computeSize: slots and widgets) and the width of its title, and write them to
scripts/frontend_sizes.json, which `scripts/workflows.py` lays the UI workflows out with.

    python scripts/measure_frontend.py      (then python scripts/workflows.py)

Needs ComfyUI ($COMFYUI_PATH) and Chromium (apt-get install chromium). tests/browser checks the laid-out
files in the same frontend, so a stale table shows there as overlapping nodes or cut titles."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZES = REPO / "scripts" / "frontend_sizes.json"

MEASURE = """async (wf) => {
  await app.loadGraphData(wf, true, true, 'measure');
  const nodes = app.graph._nodes ?? app.graph.nodes;
  const ctx = app.canvas.ctx;
  ctx.save(); ctx.font = app.canvas.title_text_font || LiteGraph.NODE_TEXT_SIZE + 'px Arial';
  const out = nodes.map(n => ({id: n.id, type: n.type, size: n.computeSize(),
                               title: ctx.measureText(n.title || '').width}));
  ctx.restore();
  return out;
}"""


def size_key(node_type: str, linked_widgets: list[str]) -> str:
    """A node's size depends on its class and on which of its widgets a link replaces."""
    return node_type + ("|" + ",".join(sorted(linked_widgets)) if linked_widgets else "")


def ui_size_keys(ui: dict) -> dict[int, str]:
    return {n["id"]: size_key(n["type"], [i["name"] for i in n.get("inputs", []) if "widget" in i])
            for n in ui["nodes"]}


def main() -> int:
    sys.path.insert(0, str(REPO))
    from tests.browser.frontend import ComfyServer, Page, find_chromium, open_frontend
    from tests.comfy_harness import comfyui_path

    chromium = find_chromium()
    if chromium is None:
        print("no Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    server, page = ComfyServer(comfyui_path()), None
    table = {}
    try:
        server.wait_ready()
        page = Page(chromium)
        open_frontend(server, page)
        for path in sorted((REPO / "example_workflows").glob("*.json")):
            ui = json.loads(path.read_text())
            keys = ui_size_keys(ui)
            for n in page.call(MEASURE, ui):
                if n["id"] in keys:
                    w, h = table.get(keys[n["id"]], [0, 0, 0])[:2]
                    table[keys[n["id"]]] = [max(w, round(n["size"][0], 1)), max(h, round(n["size"][1], 1)),
                                            round(n["title"], 1)]
    finally:
        if page is not None:
            page.close()
        server.close()
    SIZES.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
    print(f"wrote {SIZES.relative_to(REPO)}: {len(table)} node kinds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
