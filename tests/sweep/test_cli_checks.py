"""`joulebench sweep` refuses a bad plan before running anything, and --dry-run shows what would run."""

from __future__ import annotations

from pathlib import Path

from joulebench.sweep.dryrun import COLUMNS
from tests.sweep.conftest import WORKLOADS, joulebench, write_plan


def test_every_problem_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "no-config").mkdir()
    plan = write_plan(
        tmp_path,
        repeats=1,
        device="cpu",
        engines=["warpdrive", {"name": "tensorrt-llm"}, {"name": "transformers", "colour": "red"}],
        models=["./missing-model", "./no-config"],
        workloads=["nosuch", {"name": "smoke", "batch_size": -1}],
    )
    result = joulebench("sweep", str(plan), "--db", str(tmp_path / "r.db"))
    assert result.rc == 2, result.err
    lines = result.err.strip().splitlines()
    assert all(line.startswith("joulebench: error: ") for line in lines), lines
    assert "Traceback" not in result.err
    # the plan's own keys first (nothing else is checked while the file itself is wrong)
    assert len(lines) == 2, lines
    assert "engines[2]: unknown key 'colour'" in lines[0]
    assert "workloads[1].batch_size: must not be negative" in lines[1]
    assert not (tmp_path / "r.db").exists()

    plan = write_plan(
        tmp_path,
        repeats=1,
        device="cpu",
        engines=["warpdrive", {"name": "tensorrt-llm"}, "transformers"],
        models=["./missing-model", "./no-config"],
        workloads=["nosuch", "smoke"],
    )
    result = joulebench("sweep", str(plan), "--db", str(tmp_path / "r.db"))
    assert result.rc == 2
    errors = result.err
    expected = [
        "engines[0] (warpdrive): unknown engine 'warpdrive'",
        "engines[1] (tensorrt-llm): tensorrt-llm needs a GPU but device is cpu",
        f"model folder {tmp_path / 'missing-model'} does not exist here",
        f"model '{tmp_path / 'no-config'}': {tmp_path / 'no-config'} is not a model folder (no config.json)",
        "workload 'nosuch': unknown workload 'nosuch'",
    ]
    for fragment in expected:
        assert f"joulebench: error: {fragment}" in errors, (fragment, errors)
    assert "Traceback" not in errors
    assert not (tmp_path / "r.db").exists()


def test_gpu_resources_are_checked_against_the_visible_gpus(tmp_path: Path, tiny_llama: Path) -> None:
    plan = write_plan(
        tmp_path,
        engines=[{"name": "vllm", "tensor_parallel": 2, "device": "cuda"}],
        models=[str(tiny_llama)],
        workloads=["smoke"],
    )
    db = tmp_path / "r.db"
    one = joulebench("sweep", str(plan), "--db", str(db), env={"CUDA_VISIBLE_DEVICES": "0"})
    assert one.rc == 2
    assert "engines[0] (vllm): tensor_parallel 2 needs 2 GPUs on one node, 1 visible" in one.err
    none = joulebench("sweep", str(plan), "--db", str(db), env={"CUDA_VISIBLE_DEVICES": ""})
    assert none.rc == 2
    assert "engines[0] (vllm): device is cuda but no GPU is visible" in none.err
    assert not db.exists()
    # a dry run plans for the GPU server on any machine: what this one lacks is said, not refused
    dry = joulebench("sweep", str(plan), "--dry-run", env={"CUDA_VISIBLE_DEVICES": ""})
    assert dry.rc == 0, dry.err
    assert "not runnable on this machine (1); a run here would refuse it:" in dry.out
    assert "  engines[0] (vllm): device is cuda but no GPU is visible" in dry.out
    two = joulebench("sweep", str(plan), "--dry-run", env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert two.rc == 0, two.err
    assert "not runnable" not in two.out


def test_every_plan_in_the_repository_dry_runs_here(tmp_path: Path) -> None:
    """Each plan the repository ships checks clean on this machine (no GPU, no model folders): its keys,
    engines, presets and workloads are right, whatever it needs that only its own machine has."""
    root = Path(__file__).resolve().parents[2]
    plans = sorted([*root.glob("examples/*.yaml"), *root.glob("benchmarks/**/*.yaml")])
    assert len(plans) >= 30
    for plan in plans:
        result = joulebench("sweep", str(plan), "--dry-run", "--db", str(tmp_path / "none.db"))
        assert result.rc == 0, (plan, result.err)
        assert " cells (" in result.out, (plan, result.out)
        for line in result.out.split("a run here would refuse it:\n", 1)[1:]:
            # only what this machine lacks: a GPU, a folder of the GPU machine's models, an engine package
            for problem in line.splitlines():
                assert any(
                    why in problem
                    for why in ("no GPU is visible", "0 visible", "does not exist here", "is not installed")
                ), (plan, problem)
    assert not (tmp_path / "none.db").exists()


def test_an_optional_engine_that_is_not_installed_is_left_out(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        repeats=1,
        device="cpu",
        engines=["transformers", {"name": "tensorrt-llm", "optional": True}],
        models=["smollm2-135m"],
        workloads=["smoke"],
    )
    result = joulebench("sweep", str(plan), "--dry-run")
    assert result.rc == 0, result.err
    assert result.out.startswith(
        "left out tensorrt-llm (optional): tensorrt_llm is not installed: pip install"
    )
    assert "1 cells (1 to run)" in result.out
    only = write_plan(tmp_path, repeats=1, device="cpu", engines=[{"name": "tensorrt-llm", "optional": True}],
                      models=["smollm2-135m"], workloads=["smoke"])  # fmt: skip
    result = joulebench("sweep", str(only), "--dry-run")
    assert result.rc == 2 and "none is installed here" in result.err


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    for args, message in [
        ([str(tmp_path / "none.yaml")], "plan file not found"),
        ([str(plan), "--executor", "slurm"], "--executor must be one of local, ray"),
        ([str(plan), "--max-retries", "-1"], "--max-retries must not be negative"),
        ([str(plan), "--ray-address", "auto"], "--ray-address needs --executor ray"),
    ]:
        result = joulebench("sweep", *args)
        assert result.rc == 2, (args, result.err)
        assert result.err.startswith(f"joulebench: error: {message}"), result.err
        assert result.err.count("\n") == 1


def test_dry_run_lists_cells_and_default_estimates(tmp_path: Path, tiny_llama: Path) -> None:
    plan = write_plan(
        tmp_path,
        repeats=2,
        setup_repeats=1,
        device="cpu",
        defaults={"idle_s": 0},
        engines=["transformers", {"name": "transformers", "variant": "eager", "options": {"compile": False}}],
        models=[str(tiny_llama)],
        workloads=WORKLOADS,
    )
    result = joulebench("sweep", str(plan), "--dry-run", "--db", str(tmp_path / "r.db"))
    assert result.rc == 0, result.err
    header, *rows, total = result.out.strip().splitlines()
    assert tuple(header.split()) == COLUMNS
    assert [r.split()[0] for r in rows] == ["transformers"] * 2 + ["transformers:eager"] * 2
    assert all(r.split()[-1] == "pending" and r.split()[8] == "default" for r in rows)
    # per cell: 3 repeats incl. warm-up (20 s each), plus 1 setup trial (30 s) with the first workload of
    # each engine and model only; plus one engine start (30 s) per group
    assert [r.split()[7] for r in rows] == ["2m00s", "1m00s", "2m00s", "1m00s"]
    assert [r.split()[5] for r in rows] == ["1", "0", "1", "0"]
    assert total == (
        "4 cells (4 to run) in 2 engine start(s): 2 setup trial(s), 8 generation repeat(s); estimated 6m00s"
    )
    assert not (tmp_path / "r.db").exists()  # a dry run creates nothing


def test_settings_out_of_range_are_all_named_before_anything_runs(tmp_path: Path) -> None:
    """A dtype no engine takes, a negative interval, a negative temperature and a top-p above 1 were
    accepted, then failed cell by cell (each retried) after runs were written."""
    plan = write_plan(
        tmp_path,
        repeats=1,
        device="cpu",
        dtype="bogus",
        engines=["transformers"],
        models=["smollm2-135m"],
        workloads=["smoke"],
        defaults={"interval_ms": -5, "temperature": -2, "top_p": 7.5},
    )
    result = joulebench("sweep", str(plan), "--db", str(tmp_path / "r.db"), "--dry-run")
    assert result.rc == 2, result.err
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    for words in ("--dtype must be one of", "--temperature must", "--top-p must", "--interval-ms must"):
        assert sum(words in line for line in lines) == 1, (words, lines)
    assert not (tmp_path / "r.db").exists()


def test_several_plans_are_one_sweep(tmp_path: Path, tiny_llama: Path) -> None:
    """Plans given together are checked together (every plan's problems at once, each naming its plan),
    and dry-run as one list; a cell two plans share runs once."""
    common = {"repeats": 2, "setup_repeats": 0, "device": "cpu", "defaults": {"idle_s": 0}}
    one = write_plan(
        tmp_path, "one.yaml", name="one", **common, engines=["transformers"], models=[str(tiny_llama)],
        workloads=WORKLOADS,
    )  # fmt: skip
    two = write_plan(
        tmp_path, "two.yaml", name="two", **common,
        engines=["transformers", {"name": "transformers", "variant": "eager", "options": {"compile": False}}],
        models=[str(tiny_llama)], workloads=WORKLOADS[:1],
    )  # fmt: skip
    result = joulebench("sweep", str(one), str(two), "--dry-run", "--db", str(tmp_path / "r.db"))
    assert result.rc == 0, result.err
    lines = result.out.strip().splitlines()
    shared = [line for line in lines if "is also in plan one: runs once" in line]
    assert len(shared) == 1 and "of plan two" in shared[0], lines
    assert lines[-1].startswith("3 cells (3 to run) in 2 engine start(s)"), lines
    rows = [line.split()[0] for line in lines if line.endswith("pending")]
    assert rows == ["transformers", "transformers", "transformers:eager"], lines

    bad_one = write_plan(
        tmp_path, "bad1.yaml", name="bad1", **common, engines=["warpdrive"], models=[str(tiny_llama)],
        workloads=["smoke"],
    )  # fmt: skip
    bad_two = write_plan(
        tmp_path, "bad2.yaml", name="bad2", **common, engines=["transformers"], models=[str(tiny_llama)],
        workloads=["nosuch"],
    )  # fmt: skip
    result = joulebench("sweep", str(bad_one), str(bad_two), "--db", str(tmp_path / "r.db"))
    assert result.rc == 2 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert any(line.startswith("joulebench: error: plan bad1: ") and "warpdrive" in line for line in lines)
    assert any(line.startswith("joulebench: error: plan bad2: ") and "nosuch" in line for line in lines)
    assert not (tmp_path / "r.db").exists()
