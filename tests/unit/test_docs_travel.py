"""Everything the repository cites is in the repository or upstream: no team-only notes or machine paths."""
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Team notes kept outside the repository, named here in pieces so this file does not cite them itself.
OUTSIDE = ["/work/" + "shared", "reference" + "/", "comfyui-" + "api.md", "comfyui-" + "host.md",
           "DESIGN" + ".md", "anchors" + ".md", "style-" + "notes.md"]


def tracked_text_files():
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in names:
        path = REPO / name
        if path.suffix in {".py", ".md", ".sh", ".toml", ".txt", ".json", ".yaml", ".yml"} and path.is_file():
            yield name, path.read_text(encoding="utf-8", errors="replace")


def test_no_citation_of_files_outside_the_repository():
    hits = [f"{name}:{n}: {line.strip()}" for name, text in tracked_text_files()
            for n, line in enumerate(text.splitlines(), start=1) if any(word in line for word in OUTSIDE)]
    assert not hits, "cite ComfyUI's file:function (and version) or a docs/ page instead:\n" + "\n".join(hits)


def test_docs_pages_cited_in_code_exist():
    cited = {word.strip("().,;:`'\"") for _, text in tracked_text_files() for word in text.split()
             if word.strip("().,;:`'\"").startswith("docs/") and word.strip("().,;:`'\"").endswith(".md")}
    assert cited, "expected the code to cite its docs/ pages"
    assert all((REPO / page).is_file() for page in cited), cited
