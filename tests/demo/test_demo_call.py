"""``omnivoice demo``: the offline conversation, through the real gateway and phone."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import pytest

from omnivoice_local.demo import run_demo, summary
from omnivoice_local.script import DEMO_CALLER_SCRIPT

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the gateway's server (uvicorn) runs on asyncio


async def test_the_demo_holds_a_whole_conversation(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_demo(
        recording=tmp_path / "call.wav", records=tmp_path / "records", show=lines.append
    )
    record = result.record
    assert record["complete"]
    users = [t for t in record["transcript"] if t["role"] == "user"]
    agents = [t for t in record["transcript"] if t["role"] == "agent"]
    assert len(users) == len(DEMO_CALLER_SCRIPT)
    assert len(agents) == len(DEMO_CALLER_SCRIPT)
    assert result.word_error_rate <= 0.25
    assert any(t["text"].startswith("It is ") for t in agents)  # answered from the function
    metrics = record["metrics"]
    assert metrics["function_calls"] == 1
    assert metrics["errors"] == 0
    assert metrics["response_latency_ms"]["count"] == len(DEMO_CALLER_SCRIPT)
    assert result.report.marks_acknowledged == result.report.marks_received > 0
    with wave.open(str(result.recording)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        assert wav.getnframes() > 8000 * 10
    text = summary(result)
    assert "Latency per turn" in text
    assert "word error rate" in text
    assert any(line.startswith("[") and "caller:" in line for line in lines)


def test_demo_is_a_command_of_the_local_plugin() -> None:
    omnivoice = Path(sys.executable).parent / "omnivoice"
    help_text = subprocess.run(
        [str(omnivoice), "demo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "offline" in help_text
