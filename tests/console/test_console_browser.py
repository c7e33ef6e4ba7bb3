"""End to end in a real browser: two parties' consoles (`seml console` processes) against the
attestation service over real HTTPS. alice proposes with the CLI; bob opens his console,
reviews, approves through the confirmation step and sees the session become active; alice's
console, open on the same proposal, shows it too without a reload. A screenshot of each page
goes to the test's folder (and to docs/img with `make screenshots`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from _casdata import GOOD
from console._browser import (
    ConsoleProcess,
    browser,
    csp_violations,
    need_chromium,
    shoot,
    unlabelled,
)
from seml.cas import LocalCas

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T = TypeVar("T")


def seml(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "seml", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run `calls` side by side (each starts a process and mostly waits for it); their results
    in order, or the first failure once all have ended."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
    return [f.result() for f in futures]


def enter_at_once(stack: ExitStack, *managers: AbstractContextManager[T]) -> list[T]:
    """Enter `managers` side by side; each one entered is exited by `stack`, even when
    another failed to start."""
    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(m.__enter__) for m in managers]
    for m, f in zip(managers, futures, strict=True):
        if f.exception() is None:
            stack.push(m)
    return [f.result() for f in futures]


def document(public: dict[str, str]) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "iris-consortium",
        "predecessor": None,
        "parties": public,
        "approval": {"create": ["alice", "bob"], "update": ["alice", "bob"]},
        "security": {"tolerate": ["simulation"]},
        "secrets": [
            {"name": "model_key", "kind": "key", "readers": ["train"]},
            {"name": "api_token", "kind": "ascii", "size": 24, "readers": ["train"]},
        ],
        "volumes": [{"name": "model"}],
        "services": [
            {
                "name": "train",
                "measurements": [GOOD],
                "command": ["seml", "flow", "train", "--data", "training/datasets"],
                "environment": {"MODEL_KEY": "$$SEML::model_key$$"},
                "files": {"/specs/classification.yaml": "task: classification\nseed: 0\n"},
                "volumes": {"model": "/model"},
            }
        ],
        "storage": {"location": "s3://iris/consortium"},
    }


@pytest.fixture(scope="module")
def world(cas_server: LocalCas, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """alice and bob each set up their machine with `seml init` (a profile naming the service,
    its pin and the party's key); alice proposes with the CLI; each starts `seml console`
    with nothing but its profile."""
    need_chromium()
    folder = tmp_path_factory.mktemp("parties")
    envs = {
        p: {k: v for k, v in os.environ.items() if not k.startswith("SEML_")}
        | {"SEML_CONFIG_DIR": str(folder / p / "config")}
        for p in ("alice", "bob")
    }

    def init(p: str) -> Callable[[], str]:
        return lambda: seml(
            envs[p],
            *("init", "--role", "party", "--name", p, "--root", str(folder / p)),
            *("--cas", cas_server.url, "--cas-fingerprint", cas_server.fingerprint),
        )

    at_once(init("alice"), init("bob"))
    public = {p: (folder / p / "keys" / f"{p}.pub").read_text().strip() for p in envs}
    path = folder / "iris-consortium.yaml"
    path.write_text(yaml.safe_dump(document(public), sort_keys=False))
    alice_key = str(folder / "alice" / "keys" / "alice.key")
    with ExitStack() as stack:
        # The consoles need only their profiles: they start while alice proposes.
        out, alice_c, bob_c = at_once(
            lambda: seml(envs["alice"], "session", "propose", str(path), "--key", alice_key),
            lambda: stack.enter_context(ConsoleProcess([], envs["alice"])),
            lambda: stack.enter_context(ConsoleProcess([], envs["bob"])),
        )
        assert isinstance(out, str)
        proposal = out.split("proposal ")[1].split()[0]
        yield folder, proposal, {"alice": alice_c, "bob": bob_c}


@pytest.fixture(scope="module")
def browsers(world: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """alice's and bob's browsers and a phone, each with its own profile (so its own cookies),
    for the module and started side by side: starting chromium is the slow part."""
    folder = tmp_path_factory.mktemp("browsers")
    with ExitStack() as stack:
        yield enter_at_once(
            stack,
            browser(folder / "alice"),
            browser(folder / "bob"),
            browser(folder / "phone", 390, 844, phone=True),
        )


def test_two_parties_review_and_approve_in_their_browsers(
    world: Any, browsers: Any, tmp_path: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _folder, proposal, consoles = world
    alice_c, bob_c = consoles["alice"], consoles["bob"]
    alice, bob, phone = browsers
    # alice opens her console on the proposal and leaves it open.
    alice.get(alice_c.url)
    alice.get(f"{alice_c.base}/review/{proposal}")
    assert "waiting for approvals" in alice.find_element(By.ID, "status").text
    alice.execute_script("window.sawNoReload = true;")

    # bob: the link signs him in, then the token leaves the address bar.
    bob.get(bob_c.url)
    assert "token=" not in bob.current_url
    assert bob.find_element(By.TAG_NAME, "h1").text == "Sessions"
    assert "party bob" in bob.find_element(By.CSS_SELECTOR, "header .who").text
    assert "your decision is needed" in bob.page_source
    assert unlabelled(bob) == []
    shoot(bob, tmp_path, "console-sessions")

    bob.find_element(By.PARTIAL_LINK_TEXT, "first version by alice").click()
    assert bob.find_element(By.ID, "review-hash").text == proposal
    banner = bob.find_element(By.CSS_SELECTOR, ".banner.sim").text
    assert "SIMULATED evidence is accepted" in banner
    assert GOOD in bob.page_source and "seml flow train" in bob.page_source
    shoot(bob, tmp_path, "console-review")

    bob.find_element(By.LINK_TEXT, "Approve…").click()
    assert bob.find_element(By.ID, "confirm-hash").text == proposal
    assert unlabelled(bob) == []
    shoot(bob, tmp_path, "console-confirm")
    bob.find_element(By.ID, "sign").click()  # the box is not ticked: nothing is sent
    assert "/confirm" in bob.current_url
    bob.find_element(By.ID, "confirm").click()
    bob.find_element(By.ID, "sign").click()
    WebDriverWait(bob, 60).until(
        lambda d: "done=approve" in d.current_url, f"{bob.current_url}: {bob.page_source}"
    )
    state = bob.find_element(By.CSS_SELECTOR, "#status .state").text
    assert state == "ACCEPTED: active as version 1", state
    assert "alice, bob" in bob.find_element(By.CSS_SELECTOR, "#status .approved").text
    shoot(bob, tmp_path, "console-approved")

    # alice's page follows by itself (htmx polling), without a reload.
    # The poll may swap #status between finding it and reading it: look again, until 60 s.
    WebDriverWait(alice, 60, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: "ACCEPTED" in d.find_element(By.CSS_SELECTOR, "#status .state").text
    )
    assert alice.execute_script("return window.sawNoReload === true;")
    shoot(alice, tmp_path, "console-status-alice")

    bob.get(f"{bob_c.base}/audit")
    assert "Chain verified" in bob.find_element(By.ID, "chain").text
    assert "proposal.activate" in bob.page_source
    shoot(bob, tmp_path, "console-audit")

    phone.get(bob_c.url.replace("/?token", f"/review/{proposal}?token"))
    assert phone.find_element(By.ID, "review-hash").text == proposal
    width = phone.execute_script("return document.documentElement.scrollWidth;")
    assert phone.execute_script("return window.innerWidth;") == 390
    assert width <= 390, f"the review page is {width}px wide on a 390px phone"
    shoot(phone, tmp_path, "console-phone")

    # Without the cookie, nothing: the same browser, cookies cleared.
    bob.delete_all_cookies()
    bob.get(f"{bob_c.base}/review/{proposal}")
    assert "Not signed in" in bob.page_source and proposal not in bob.page_source
    assert csp_violations(bob) == [] and csp_violations(alice) == []
    for name in ("sessions", "review", "confirm", "approved", "status-alice", "audit", "phone"):
        assert (tmp_path / f"console-{name}.png").stat().st_size > 5000


def test_model_release_and_receipts_in_the_browser(
    world: Any, browsers: Any, cas_server: LocalCas, tmp_path: Path
) -> None:
    """A run of a session whose model waits for alice and bob: bob's console shows its receipt
    verified in place, bob approves the model, then alice; a pasted receipt verifies and the
    same receipt with one metric changed is shown failing."""
    import hashlib
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from _casdata import Parties
    from cas.test_cas_receipts import Run, _agree
    from seml.policy import ApprovalRule, load_private_key

    folder, _, consoles = world
    parties = Parties()
    parties.keys = {p: load_private_key(folder / p / "keys" / f"{p}.key") for p in consoles}
    with cas_server.client() as client:
        _agree(client, "iris-gated", parties, release=ApprovalRule.all_of(["alice", "bob"]))
        Run(client, "iris-gated", parties).whole()
        receipt = client.receipts("iris-gated", parties.keys["bob"]).receipts[-1].receipt
    # bob's machine recorded the manifest of the dataset it pushed (its sync state).
    digest = hashlib.sha256(b"iris-gated bob").hexdigest()
    (folder / "bob" / "state" / "sync-versions.json").write_text(
        json.dumps({"file:///nowhere/datasets/bob": {"version": 1, "digest": digest}})
    )
    model = receipt.receipt.model.digest
    alice_c, bob_c = consoles["alice"], consoles["bob"]
    alice, bob, _ = browsers
    bob.get(bob_c.url.replace("/?token", "/runs?token"))
    assert bob.find_element(By.TAG_NAME, "h1").text == "Runs and models"
    assert "verifies" in bob.page_source and "your decision is needed" in bob.page_source
    shoot(bob, tmp_path, "console-runs")

    bob.find_element(By.PARTIAL_LINK_TEXT, "receipt issued").click()
    assert bob.find_element(By.ID, "receipt-id").text == receipt.id
    assert bob.find_element(By.ID, "verdict").text == "VERIFIES"
    checks = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[1].text
        for row in bob.find_elements(By.CSS_SELECTOR, "table.checks tbody tr")
    }
    assert checks["signature"] == "PASS" and checks["input bob"] == "PASS", checks
    assert checks["session"] == "PASS" and checks["model"] == "SKIPPED", checks
    assert "SIMULATED" in bob.find_element(By.CSS_SELECTOR, ".banner.sim").text
    shoot(bob, tmp_path, "console-receipt")

    bob.find_element(By.LINK_TEXT, "Approve model…").click()
    assert bob.find_element(By.ID, "confirm-model").text == model
    shoot(bob, tmp_path, "console-model-confirm")
    bob.find_element(By.ID, "confirm").click()
    bob.find_element(By.ID, "sign").click()
    assert bob.find_element(By.ID, "release-state").text == "AWAITING"
    assert "awaits approval by alice" in bob.find_element(By.ID, "release").text

    alice.get(alice_c.url.replace("/?token", f"/receipts/iris-gated/{receipt.id}?token"))
    # alice uses the keyboard only: Enter on the link, Space on the box, Enter on the button.
    alice.find_element(By.LINK_TEXT, "Approve model…").send_keys(Keys.ENTER)
    alice.find_element(By.ID, "confirm").send_keys(Keys.SPACE)
    alice.find_element(By.ID, "sign").send_keys(Keys.ENTER)
    assert alice.find_element(By.ID, "release-state").text == "RELEASED"
    shoot(alice, tmp_path, "console-model-released")

    # A receipt bob received: as issued it verifies; one metric changed, it fails.
    text = receipt.to_json()
    tampered = json.loads(text)
    tampered["receipt"]["training"]["metrics"]["classification"]["accuracy"] = 1.0
    for name, body, verdict in (
        ("console-verify", text, "VERIFIES"),
        ("console-verify-tampered", json.dumps(tampered, indent=1), "DOES NOT VERIFY"),
    ):
        bob.get(f"{bob_c.base}/verify")
        field = bob.find_element(By.ID, "receipt")
        bob.execute_script("arguments[0].value = arguments[1];", field, body)
        assert unlabelled(bob) == []
        bob.find_element(By.ID, "check").click()
        assert bob.find_element(By.ID, "verdict").text == verdict
        shoot(bob, tmp_path, name)
    failing = bob.find_element(By.CSS_SELECTOR, "tr.check-fail").text
    assert failing.startswith("signature FAIL"), failing
    assert csp_violations(bob) == [] and csp_violations(alice) == []
