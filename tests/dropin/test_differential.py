"""The drop-in against the real runai-model-streamer 0.17.1, scenario by scenario.

scenarios.py runs once under the reference's Python (its own virtual environment, sharing
torch with ours: scripts/common.sh ensure_reference_venv) and once under ours. For each
scenario both must produce the same tensors (dtype, shape, bytes, aligned address), the
same metadata and listings, or the same error: ours an instance of the class the reference
raised, raised at the same step, with the reference's wording where the scenario names it.
Where tensorstream deliberately differs, DEVIATIONS says how and why, and the test checks
that both sides still behave as written there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("scenarios.py")
REFERENCE_PYTHON = os.environ.get("TENSORSTREAM_REFERENCE_PYTHON")

# Words of the reference's message that ours must carry too (checked in both).
PHRASES = {
    "corrupt_huge_len": ["Corrupted File: Header size", "exceeds limit of 104857600 bytes"],
    "corrupt_notjson": ["is not valid JSON"],
    "corrupt_nul": ["is not valid JSON"],
    "corrupt_notutf8": ["is not valid UTF-8"],
    "corrupt_overlap": ["Corrupted File: Tensor 'a' overlaps with next tensor"],
    "corrupt_gap": ["Corrupted File: Gaps between tensors are not allowed. Tensor 'a' ends at 4, "
                    "but next tensor starts at 6"],
    "corrupt_shape": ["Corrupted Tensor 'a': Shape claims 16 bytes ([4] x F32), but offsets "
                      "reserve 4 bytes"],
    "corrupt_dtype": ["Unsupported dtype 'Q7' in tensor 'a'"],
    "corrupt_nooff": ["Corrupted Header: Tensor 'a' missing data_offsets"],
    "corrupt_trunc": ["Corrupted File:", "is truncated"],
    "corrupt_trailing": ["Corrupted File:", "extra trailing bytes"],
    "corrupt_notstart": ["Corrupted File: Tensor 'a' does not start at the beginning of the data "
                         "section (starts at 2)"],
    "corrupt_startend": ["Corrupted"],
    "missing_file": ["File access error"],
    "file_chunks_missing_file": ["File access error"],
    "memory_limit_below_the_largest_tensor": ["Memory limit supplied: 10 cannot be smaller than"],
    "memory_limit_negative": ["Memory limit supplied: -5 cannot be smaller than"],
    "memory_limit_not_a_number": ["invalid literal for int()"],
    "file_chunks_below_the_memory_limit": ["Memory limit supplied: 100 cannot be smaller than: "
                                           "40000"],
    "tensor_names_a_str": ["tensor_names must be a collection of names, not a single str"],
    "tensor_names_empty": ["tensor_names must not be empty - pass None to load every tensor"],
    "tensor_names_unknown": ["tensor_names not found in checkpoint: ['also.nope', 'nope']"],
    "tensor_names_in_two_files": ["tensor_names requested tensors that appear in more than one "
                                  "file: ['layers.0.w']"],
    "device_bogus": ["Unusable device 'bogus'"],
    "distributed_setting_invalid": ["Invalid value for RUNAI_STREAMER_DIST"],
    "file_chunks_not_parallel": ["offsets (2) and sizes (1) must be parallel"],
    "metadata_from_an_overlapping_header": ["overlaps with next tensor"],
}

# scenario -> (what the reference does, what tensorstream does, why)
DEVIATIONS = {
    "corrupt_array": (
        {"outcome": "error", "class": "builtins.AttributeError"},
        {"outcome": "error", "class": "builtins.ValueError", "phrase": "is not a JSON object"},
        "A header that is a JSON array crashes the reference's parser with AttributeError; it "
        "is a corrupt file like any other, so tensorstream raises a ValueError naming it."),
    "corrupt_duplicate": (
        {"outcome": "ok"},
        {"outcome": "error", "class": "builtins.ValueError", "phrase": "appears twice"},
        "JSON with a name twice keeps one of the two tensors silently in the reference (and in "
        "Python's json); SPEC.md §4 counts duplicate names as bad input."),
}


def run(python: str, workdir: Path, env: dict) -> dict:
    out = workdir / "out.json"
    workdir.mkdir()
    result = subprocess.run([python, str(SCRIPT), str(workdir), str(out)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{python} {SCRIPT} failed:\n{result.stderr[-4000:]}"
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    if not REFERENCE_PYTHON:
        pytest.fail("TENSORSTREAM_REFERENCE_PYTHON is not set: run this suite through "
                    "scripts/test.sh, which prepares the reference's environment")
    work = tmp_path_factory.mktemp("differential")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNAI_STREAMER_")}
    env["RUNAI_STREAMER_LOG_LEVEL"] = "WARNING"
    theirs = run(REFERENCE_PYTHON, work / "reference", {**env, "PYTHONPATH": ""})
    ours = run(sys.executable, work / "tensorstream", env)
    # The reference is the real package (it ships its C library under libstreamer/), ours
    # is the drop-in: a mix-up would compare a package with itself.
    assert (Path(theirs.pop("__package__")["value"]) / "libstreamer").is_dir()
    assert not (Path(ours.pop("__package__")["value"]) / "libstreamer").exists()
    return theirs, ours


def test_every_scenario_ran_on_both_sides(outcomes):
    theirs, ours = outcomes
    assert sorted(theirs) == sorted(ours)
    assert len(theirs) > 60


def test_same_results_and_errors(outcomes):
    theirs, ours = outcomes
    problems = []
    for name in sorted(theirs):
        if name in DEVIATIONS:
            continue
        ref, our = theirs[name], ours[name]
        if ref["outcome"] != our["outcome"]:
            problems.append(f"{name}: reference {describe(ref)}, ours {describe(our)}")
        elif ref["outcome"] == "ok":
            if ref["value"] != our["value"]:
                problems.append(f"{name}: different values:\n  reference {ref['value']}\n  "
                                f"ours      {our['value']}")
        else:
            if ref["classes"][0] not in our["classes"]:
                problems.append(f"{name}: reference raised {ref['classes'][0]}, ours "
                                f"{our['classes'][0]} (bases {our['classes'][1:]})")
            if ref["step"] != our["step"]:
                problems.append(f"{name}: reference raised at {ref['step']}, ours at {our['step']}")
            for phrase in PHRASES.get(name, []):
                for side, outcome in (("reference", ref), ("ours", our)):
                    if phrase not in outcome["message"]:
                        problems.append(f"{name}: {phrase!r} missing from the {side}'s message "
                                        f"{outcome['message']!r}")
    assert not problems, "\n".join(problems)


def test_every_phrase_belongs_to_a_failing_scenario(outcomes):
    theirs, _ = outcomes
    for name in PHRASES:
        assert theirs[name]["outcome"] == "error", name


@pytest.mark.parametrize("name", sorted(DEVIATIONS))
def test_documented_deviations_still_hold(outcomes, name):
    theirs, ours = outcomes
    ref_expected, our_expected, _why = DEVIATIONS[name]
    for outcome, expected in ((theirs[name], ref_expected), (ours[name], our_expected)):
        assert outcome["outcome"] == expected["outcome"], describe(outcome)
        if "class" in expected:
            assert expected["class"] in outcome["classes"], describe(outcome)
        if "phrase" in expected:
            assert expected["phrase"] in outcome["message"]


def test_our_errors_name_the_file(outcomes):
    _, ours = outcomes
    for name, outcome in ours.items():
        if name.startswith("corrupt_") or name in ("missing_file", "file_chunks_missing_file"):
            assert "bad-" in outcome["message"] or "nope" in outcome["message"] \
                or "does-not-exist" in outcome["message"], (name, outcome["message"])


@pytest.mark.parametrize("level, fails", [("bogus", True), ("debug", False), ("WARNING", False)])
def test_log_level_is_checked_at_import_as_the_reference_does(level, fails):
    code = ("import runai_model_streamer, logging; "
            "print(logging.getLogger('runai_model_streamer').level)")
    env = {**os.environ, "RUNAI_STREAMER_LOG_LEVEL": level}
    results = [subprocess.run([python, "-c", code], env=env, capture_output=True, text=True,
                              timeout=120)
               for python in (REFERENCE_PYTHON, sys.executable)]
    for result in results:
        assert (result.returncode != 0) == fails, result.stderr[-2000:]
        if fails:
            assert "ValueError" in result.stderr and "Unknown level" in result.stderr
    assert results[0].stdout == results[1].stdout


def describe(outcome: dict) -> str:
    if outcome["outcome"] == "ok":
        return "ok"
    return f"{outcome['classes'][0]} at {outcome['step']}: {outcome['message'][:300]!r}"
