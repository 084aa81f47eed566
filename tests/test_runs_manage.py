"""Managing runs: rename, note, tags, star, archive and delete, in the store and through the real
`pykernel-ext runs ...` command. Deleting keeps every blob another run still uses."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import cli
from pykernel_ext.store import RunStore
from pykernel_ext.store.manage import RunPatch


def tracked(home: Path, name: str, artifact_text: str, printed: str, parent_id: str | None = None) -> str:
    """A real tracked run with printed output (a log blob) and an artifact (a blob)."""
    from pykernel_ext.tracking import track

    with track(name=name, params={"lr": 0.1}, artifacts=[f"{name}.txt"]) as run:
        (home / f"{name}.txt").write_text(artifact_text)  # written by the run: only such files are its artifacts
        print(printed)
    if parent_id:
        with RunStore.open(home / ".pykernel_ext") as store, store.transaction() as conn:
            conn.execute("UPDATE runs SET parent_id = ? WHERE id = ?", (parent_id, run.id))
    return run.id


def age_blobs(store: RunStore, seconds: float = 3600) -> None:
    """Blobs written a moment ago are left alone by a deletion (a writer may be about to use them)."""
    old = time.time() - seconds
    for path in store.blobs.root.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def blob_digests(store: RunStore, run_id: str) -> dict[str, str]:
    run = store.get_run(run_id)
    return {"stdout": run["logs"]["stdout_blob"], "artifact": run["artifacts"][0]["blob"]}


def test_delete_removes_unshared_blobs_and_keeps_shared_ones(store_home):
    a = tracked(store_home, "a", "shared weights", "only in a")
    b = tracked(store_home, "b", "shared weights", "only in b")  # the same artifact content: one blob for both
    child = tracked(store_home, "child", "child weights", "child output", parent_id=a)
    with RunStore.open(store_home / ".pykernel_ext") as store:
        blobs_a, blobs_b, blobs_child = (blob_digests(store, r) for r in (a, b, child))
        assert blobs_a["artifact"] == blobs_b["artifact"]
        age_blobs(store)
        report = store.delete_runs([a[:10]])
        assert set(report.run_ids) == {a, child}  # the child went with its parent
        assert not store.blobs.exists(blobs_a["stdout"]) and not store.blobs.exists(blobs_child["artifact"])
        assert store.blobs.exists(blobs_b["artifact"]), "b still uses the shared artifact"
        assert store.blobs.exists(blobs_b["stdout"])
        assert report.blobs_removed == 3 and report.bytes_freed > 0  # two logs, the child's artifact
        assert store.get_run(b)["artifacts"][0]["blob"] == blobs_b["artifact"]
        assert store.environment(store.get_run(b)["environment_id"]), "the environment b ran in stays"
        assert store._read("SELECT COUNT(*) AS n FROM metrics WHERE run_id IN (?, ?)", (a, child))[0]["n"] == 0
        assert store._read("SELECT COUNT(*) AS n FROM run_params WHERE run_id = ?", (a,))[0]["n"] == 0
        store.delete_runs([b])
        assert not store.blobs.exists(blobs_b["artifact"])


def test_blobs_touched_a_moment_ago_are_kept(store_home):
    run_id = tracked(store_home, "fresh", "fresh weights", "fresh output")
    with RunStore.open(store_home / ".pykernel_ext") as store:
        digests = blob_digests(store, run_id)
        report = store.delete_runs([run_id])
        assert report.run_ids == [run_id] and report.blobs_removed == 0
        assert store.blobs.exists(digests["artifact"])


def test_patch_renames_notes_tags_stars_and_archives(store_home):
    run_id = tracked(store_home, "patched", "w", "out")
    with RunStore.open(store_home / ".pykernel_ext") as store:
        before = store.summary(run_id)["updated_at"]
        run = store.update_run(run_id, RunPatch(name=" better name ", note="lr too high?\nretry with 0.01",
                                                starred=True, set_tags={"stage": "dev", "owner": "me"}))
        assert run["name"] == "better name" and run["note"].startswith("lr too high?") and run["starred"] is True
        assert run["tags"] == {"stage": "dev", "owner": "me"} and run["updated_at"] > before
        run = store.update_run(run_id, RunPatch(remove_tags=("owner",), note="", archived=True))
        assert run["tags"] == {"stage": "dev"} and run["note"] is None and run["archived"] is True
        assert store.list_runs(tag="owner")[1] == 0 and store.list_runs(tag="stage", archived="only")[1] == 1


@pytest.mark.parametrize("patch, message", [
    (RunPatch(name="  "), "cannot be empty"), (RunPatch(name="a\nb"), "one line"),
    (RunPatch(note="x" * 10_001), "at most 10,000"), (RunPatch(set_tags={"a=b": "c"}), "without '='"),
    (RunPatch(set_tags={"": "c"}), "1 to 100"), (RunPatch(set_tags={"k": "v\n"}), "one line"),
])
def test_bad_patches_are_refused_with_the_reason(store, patch, message):
    with pytest.raises(ValueError, match=message):
        patch.validate()


def test_cli_manages_runs(store_home):
    run_id = tracked(store_home, "cli-run", "cli weights", "cli output")
    short = run_id[:8]
    done = cli("runs", "rename", short, "renamed run")
    assert done.returncode == 0 and "renamed" in done.stdout
    assert cli("runs", "note", short, "looks good").returncode == 0
    tagged = cli("runs", "tag", short, "stage=final", "team=vision")
    assert tagged.returncode == 0 and "stage=final" in tagged.stdout
    assert cli("runs", "tag", short, "--remove", "team").returncode == 0
    assert cli("runs", "star", short).returncode == 0
    shown = json.loads(cli("runs", "show", short, "--json").stdout)
    assert shown["name"] == "renamed run" and shown["note"] == "looks good"
    assert shown["tags"] == {"stage": "final"} and shown["starred"] is True
    assert "note: looks good" in cli("runs", "show", short).stdout

    assert cli("runs", "archive", short).returncode == 0
    assert json.loads(cli("runs", "list", "--json").stdout) == []  # archived: out of the default view
    listed = json.loads(cli("runs", "list", "--archived", "--json").stdout)
    assert [r["id"] for r in listed] == [run_id] and listed[0]["archived"] is True
    assert json.loads(cli("runs", "list", "--search", "is:archived lr=0.1", "--json").stdout)[0]["id"] == run_id

    refused = cli("runs", "rm", short)  # no terminal to ask in, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert json.loads(cli("runs", "list", "--archived", "--json").stdout), "nothing was deleted"
    removed = cli("runs", "rm", short, "--yes")
    assert removed.returncode == 0 and "deleted 1 run(s)" in removed.stdout
    assert json.loads(cli("runs", "list", "--archived", "--json").stdout) == []


def test_cli_management_errors_are_clear(store_home):
    run_id = tracked(store_home, "err-run", "w", "out")
    bad_tag = cli("runs", "tag", run_id[:8], "novalue")
    assert bad_tag.returncode == 2 and "write KEY=VALUE" in bad_tag.stderr
    empty_name = cli("runs", "rename", run_id[:8], " ")
    assert empty_name.returncode == 2 and "cannot be empty" in empty_name.stderr
    missing = cli("runs", "star", "ffffffff")
    assert missing.returncode == 2 and "no run matches" in missing.stderr
    no_text = cli("runs", "note", run_id[:8])
    assert no_text.returncode == 2 and "--clear" in no_text.stderr
    bad_search = cli("runs", "list", "--search", "lr>high")
    assert bad_search.returncode == 2 and "compares numbers" in bad_search.stderr
    sorted_rows = cli("runs", "list", "--sort", "metric:nothing", "--json")
    assert sorted_rows.returncode == 0 and json.loads(sorted_rows.stdout)[0]["id"] == run_id
