"""Plugin discovery, loading, failure isolation and selection (gaia_core.plugins)."""

from __future__ import annotations

import json

import pluggy
import pytest
from click.testing import CliRunner

from gaia_core import hookimpl, plugin_check, plugins
from gaia_core.cli import cli, main
from gaia_core.config import Home
from gaia_core.errors import PluginError
from gaia_core.model import NodeRecord, Task, TaskResult
from gaia_core.roles import NodeContext, Runner
from gaia_core.state import State

NODE_ID = "ab" * 32

TRANSPORT_PLUGIN = """
    from gaia_core import hookimpl
    from gaia_core.roles import TransportSpec


    @hookimpl
    def gaia_transports():
        yield TransportSpec(name="{name}", factory=object)
"""

QUEUE_PLUGIN = """
    from gaia_core import hookimpl
    from gaia_core.roles import QueueSpec


    @hookimpl
    def gaia_queues():
        yield QueueSpec(name="{name}", factory=object)
"""

RUNNER_PLUGIN = """
    from gaia_core import hookimpl
    from gaia_core.roles import RunnerSpec


    @hookimpl
    def gaia_runners():
        yield RunnerSpec(name="{name}", task_kinds=("wasm",), factory=object)
"""

IMPORT_ERROR_PLUGIN = "import package_that_does_not_exist\n"

MISSPELT_PLUGIN = """
    from gaia_core import hookimpl


    @hookimpl
    def gaia_runner():
        return []
"""

WRONG_SIGNATURE_PLUGIN = """
    from gaia_core import hookimpl


    @hookimpl
    def gaia_validate_task(task, envelope, context, strictness):
        pass
"""

RAISING_ROLE_PLUGIN = """
    from gaia_core import hookimpl
    from gaia_core.roles import RunnerSpec


    @hookimpl
    def gaia_runners():
        yield RunnerSpec(name="half", task_kinds=("half",), factory=object)


    @hookimpl
    def gaia_queues():
        raise RuntimeError("queue backend missing")
"""

WRONG_SPEC_PLUGIN = """
    from gaia_core import hookimpl
    from gaia_core.roles import QueueSpec


    @hookimpl
    def gaia_runners():
        yield QueueSpec(name="oops", factory=object)
"""


@pytest.fixture(autouse=True)
def _isolated(gaia_home: Home) -> None:
    """Every test runs in an empty home with no plugin selection in the environment."""


def test_zero_plugins_selected() -> None:
    loaded = plugins.load([])
    assert [i for i in loaded.infos.values() if i.status == "active"] == []
    assert all(loaded.specs(role) == [] for role in plugins.ROLE_HOOKS)


def test_a_good_plugin_is_active_with_its_roles_and_hooks(fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-good", good_plugin, version="1.2.3")
    loaded = plugins.load(["gaia-fake-good"])
    info = loaded.infos["gaia-fake-good"]
    assert (info.status, info.version) == ("active", "1.2.3")
    assert info.hooks == ("gaia_benchmarks", "gaia_provers", "gaia_runners")
    [(owner, spec)] = loaded.specs("runner")
    assert (owner, spec.name) == ("gaia-fake-good", "echo")
    assert set(loaded.runners_by_kind()) == {"echo"}
    assert loaded.prover("none").simulated is True
    info = loaded.infos["gaia-fake-good"]
    assert info.roles == ("benchmark", "prover", "runner")
    assert set(info.provides) == {"runner:echo", "benchmark:null", "prover:none"}


def test_selection_names_are_normalised(fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-norm", good_plugin)
    loaded = plugins.load(["Gaia_Fake.Norm"])
    assert loaded.infos["gaia-fake-norm"].status == "active"


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        (IMPORT_ERROR_PLUGIN, "ModuleNotFoundError"),
        (MISSPELT_PLUGIN, "gaia_runner"),
        (WRONG_SIGNATURE_PLUGIN, "strictness"),
    ],
    ids=["import-error", "misspelt-hook", "wrong-signature"],
)
def test_a_broken_plugin_fails_alone(fake_dists, good_plugin: str, source: str, needle: str) -> None:
    fake_dists.add("gaia-fake-broken", source)
    fake_dists.add("gaia-fake-fine", good_plugin)
    loaded = plugins.load(["gaia-fake-broken", "gaia-fake-fine"])
    broken = loaded.infos["gaia-fake-broken"]
    assert broken.status == "failed"
    assert needle in broken.error
    assert "pip install -U gaia-fake-broken" in broken.remedy
    assert loaded.pm.get_plugin("gaia-fake-broken") is None
    assert loaded.infos["gaia-fake-fine"].status == "active"
    assert [spec.name for _, spec in loaded.specs("runner")] == ["echo"]


def test_a_raising_role_hook_fails_the_plugin_and_drops_all_its_specs(fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-raises", RAISING_ROLE_PLUGIN)
    fake_dists.add("gaia-fake-fine", good_plugin)
    loaded = plugins.load(["gaia-fake-raises", "gaia-fake-fine"])
    assert [spec.name for _, spec in loaded.specs("runner")] == ["echo"]
    info = loaded.infos["gaia-fake-raises"]
    assert info.status == "failed"
    assert "gaia_queues() raised RuntimeError: queue backend missing" in info.error
    assert info.provides == ()
    assert loaded.infos["gaia-fake-fine"].status == "active"


def test_a_role_hook_yielding_the_wrong_record_fails(fake_dists) -> None:
    fake_dists.add("gaia-fake-wrongspec", WRONG_SPEC_PLUGIN)
    loaded = plugins.load(["gaia-fake-wrongspec"])
    assert loaded.specs("runner") == []
    assert "yielded QueueSpec, expected RunnerSpec" in loaded.infos["gaia-fake-wrongspec"].error


def test_strict_mode_raises_instead_of_isolating(fake_dists, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dists.add("gaia-fake-broken", IMPORT_ERROR_PLUGIN)
    monkeypatch.setenv("GAIA_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="gaia-fake-broken failed: ModuleNotFoundError"):
        plugins.load(["gaia-fake-broken"])


def test_strict_mode_raises_for_a_raising_role_hook(fake_dists) -> None:
    fake_dists.add("gaia-fake-raises", RAISING_ROLE_PLUGIN)
    loaded = plugins.load(["gaia-fake-raises"], strict=True)
    with pytest.raises(PluginError, match="queue backend missing"):
        loaded.specs("queue")


def test_unknown_selected_name_is_an_error(fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-good", good_plugin)
    with pytest.raises(PluginError, match="unknown plugin\\(s\\): gaia-nope") as info:
        plugins.load(["gaia-nope", "gaia-fake-good"])
    assert "gaia-fake-good" in str(info.value)
    assert info.value.exit_code == 5


def test_unselected_and_blocked_plugins_are_blocked(fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-a", good_plugin)
    fake_dists.add("gaia-fake-b", TRANSPORT_PLUGIN.format(name="b"))
    fake_dists.add("gaia-fake-c", QUEUE_PLUGIN.format(name="c"))
    loaded = plugins.load(["gaia-fake-a", "gaia-fake-b"], block=["gaia-fake-b"])
    statuses = {n: loaded.infos[n].status for n in ("gaia-fake-a", "gaia-fake-b", "gaia-fake-c")}
    assert statuses == {"gaia-fake-a": "active", "gaia-fake-b": "blocked", "gaia-fake-c": "blocked"}
    assert loaded.specs("transport") == [] and loaded.specs("queue") == []


@pytest.mark.parametrize(
    ("template", "role"), [(TRANSPORT_PLUGIN, "transport"), (QUEUE_PLUGIN, "queue")]
)
def test_two_providers_of_a_single_role_name_both(fake_dists, template: str, role: str) -> None:
    fake_dists.add("gaia-fake-one", template.format(name="one"))
    fake_dists.add("gaia-fake-two", template.format(name="two"))
    loaded = plugins.load(["gaia-fake-one", "gaia-fake-two"])
    with pytest.raises(PluginError, match=f"more than one {role} plugin") as info:
        loaded.one(role)
    assert "gaia-fake-one (one)" in str(info.value) and "gaia-fake-two (two)" in str(info.value)
    assert "--plugins" in str(info.value)
    assert plugins.load(["gaia-fake-two"]).one(role).name == "two"


def test_no_provider_of_a_single_role_says_what_to_install() -> None:
    with pytest.raises(PluginError, match="pip install gaia-queue-memory"):
        plugins.load([]).one("queue")


def test_two_runners_claiming_a_kind_name_both(fake_dists) -> None:
    fake_dists.add("gaia-fake-r1", RUNNER_PLUGIN.format(name="r1"))
    fake_dists.add("gaia-fake-r2", RUNNER_PLUGIN.format(name="r2"))
    with pytest.raises(PluginError, match="'wasm' is claimed by two runners: gaia-fake-r1 and gaia-fake-r2"):
        plugins.load(["gaia-fake-r1", "gaia-fake-r2"]).runners_by_kind()


def test_unknown_prover_scheme_lists_the_active_ones(fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-good", good_plugin)
    with pytest.raises(PluginError, match="no active prover for scheme 'groth16' \\(active: none\\)"):
        plugins.load(["gaia-fake-good"]).prover("groth16")


# ---------------------------------------------------------------- selection precedence


def test_selection_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plugins.resolve_selection(None, None) is None
    assert plugins.resolve_selection(None, ["Gaia_A"]) == ["gaia-a"]
    monkeypatch.setenv("GAIA_LOAD_PLUGINS", "gaia-b, gaia-c")
    assert plugins.resolve_selection(None, ["gaia-a"]) == ["gaia-b", "gaia-c"]
    assert plugins.resolve_selection("gaia-d", ["gaia-a"]) == ["gaia-d"]
    monkeypatch.setenv("GAIA_LOAD_PLUGINS", "")
    assert plugins.resolve_selection(None, ["gaia-a"]) == []
    assert plugins.resolve_selection("", None) == []


def _active(state: State) -> set[str]:
    return {i.name for i in state.plugins().infos.values() if i.status == "active"}


def test_state_selects_by_config_env_and_option(fake_dists, good_plugin: str, gaia_home: Home,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dists.add("gaia-fake-a", good_plugin)
    fake_dists.add("gaia-fake-b", TRANSPORT_PLUGIN.format(name="b"))
    gaia_home.config_file.write_text('[plugins]\nload = ["gaia-fake-a", "gaia-fake-b"]\nblock = ["gaia-fake-b"]\n')
    assert _active(State(None, None, False)) == {"gaia-fake-a"}
    monkeypatch.setenv("GAIA_LOAD_PLUGINS", "gaia-fake-b")
    assert _active(State(None, None, False)) == set()  # the config's block still applies
    gaia_home.config_file.write_text("")
    assert _active(State(None, None, False)) == {"gaia-fake-b"}
    assert _active(State(None, "gaia-fake-a", False)) == {"gaia-fake-a"}
    monkeypatch.setenv("GAIA_LOAD_PLUGINS", "")
    assert _active(State(None, None, False)) == set()


# ---------------------------------------------------------------- in-process plugins and hooks


class Lifecycle:
    """An in-process plugin recording lifecycle events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    @hookimpl
    def gaia_node_started(self, record: NodeRecord, context: NodeContext) -> None:
        self.events.append(("started", record.node_id))

    @hookimpl
    def gaia_node_stopping(self, context: NodeContext) -> None:
        self.events.append(("stopping", context.home))

    @hookimpl
    def gaia_task_finished(self, task: Task, result: TaskResult, context: NodeContext) -> None:
        self.events.append(("finished", result.status.value))


def test_lifecycle_hooks_reach_an_in_process_plugin(plugin_manager: plugins.Plugins,
                                                    node_context: NodeContext) -> None:
    recorder = Lifecycle()
    plugin_manager.register(recorder, "recorder", "9.9")
    assert plugin_manager.infos["recorder"].hooks == (
        "gaia_node_started", "gaia_node_stopping", "gaia_task_finished")
    hook = plugin_manager.hook
    record = NodeRecord(node_id=NODE_ID, transport={"curve": bytes(32)})
    task = Task(module_id="cd" * 32)
    hook.gaia_node_started(record=record, context=node_context)
    hook.gaia_task_finished(task=task, result=TaskResult(task_id="ef" * 32, status="trap"), context=node_context)
    hook.gaia_node_stopping(context=node_context)
    assert recorder.events == [("started", NODE_ID), ("finished", "trap"), ("stopping", node_context.home)]


def test_registering_an_in_process_plugin_with_a_misspelt_hook_raises(plugin_manager: plugins.Plugins) -> None:
    class Misspelt:
        @hookimpl
        def gaia_node_start(self) -> None:
            """Misspelt on purpose."""

    with pytest.raises(pluggy.PluginValidationError, match="gaia_node_start"):
        plugin_manager.register(Misspelt(), "misspelt")


# ---------------------------------------------------------------- gaia plugins --check

#: A plugin whose providers keep their protocols, reads its own config table and adds a command.
CONFORMING_PLUGIN = """
    import click

    from gaia_core.plugin_api import ConfigError, ProverSpec, RunnerSpec, hookimpl


    class Runner:
        def __init__(self, context):
            self.limit = context.config.section("gaia-fake-check").get("limit", 1)
            if not isinstance(self.limit, int):
                raise ConfigError(f"[gaia-fake-check] limit must be an integer, got {self.limit!r}")

        def run(self, task, *args, **kwargs):
            raise NotImplementedError

        def close(self, wait=True):
            pass


    class Prover:
        scheme = "fake"

        def __init__(self, context):
            pass

        def prove(self, task, result):
            raise NotImplementedError

        def verify(self, proof, task, result, *, strict=False):
            raise NotImplementedError


    @hookimpl
    def gaia_runners():
        yield RunnerSpec(name="fake", task_kinds=("fake",), factory=Runner)


    @hookimpl
    def gaia_provers():
        yield ProverSpec(scheme="fake", factory=Prover)


    @hookimpl
    def gaia_register_commands(cli):
        @cli.command()
        def fake():
            "A command."
"""

#: The same plugin with its providers broken against their protocols.
BROKEN_PROVIDERS_PLUGIN = """
    from gaia_core.plugin_api import ProverSpec, QueueSpec, RunnerSpec, hookimpl


    class Runner:
        def __init__(self, context):
            pass

        def run(self, job):
            raise NotImplementedError


    class Prover:
        scheme = "other"

        def __init__(self, context):
            pass

        def prove(self, task, result, seed):
            raise NotImplementedError

        def verify(self, proof):
            raise NotImplementedError


    class Queue:
        def __init__(self, context):
            pass

        def admit(self, task):
            raise NotImplementedError

        def next(self, timeout):
            raise NotImplementedError

        def close(self):
            pass


    @hookimpl
    def gaia_runners():
        yield RunnerSpec(name="bad", task_kinds=("bad",), factory=Runner)


    @hookimpl
    def gaia_provers():
        yield ProverSpec(scheme="fake", factory=Prover)


    @hookimpl
    def gaia_queues():
        yield QueueSpec(name="bad", factory=Queue)
"""


#: Providers that raise where the check looks: a property read and close().
RAISING_PROVIDER_PLUGIN = """
    from gaia_core.plugin_api import ProverSpec, RunnerSpec, hookimpl


    class Runner:
        def __init__(self, context):
            pass

        def run(self, task):
            raise NotImplementedError

        def close(self):
            raise OSError("already gone")


    class Prover:
        def __init__(self, context):
            pass

        @property
        def scheme(self):
            raise RuntimeError("no scheme today")

        def prove(self, task, result):
            raise NotImplementedError

        def verify(self, proof, task, result):
            raise NotImplementedError


    @hookimpl
    def gaia_runners():
        yield RunnerSpec(name="odd", task_kinds=("odd",), factory=Runner)


    @hookimpl
    def gaia_provers():
        yield ProverSpec(scheme="odd", factory=Prover)
"""


def _check(cli_runner: CliRunner, name: str, *extra: str) -> tuple[int, dict[str, dict[str, object]]]:
    result = cli_runner.invoke(cli, ["plugins", "--check", name, "--json", *extra])
    assert "Traceback" not in result.output
    return result.exit_code, {c["check"]: c for c in json.loads(result.output)}


def test_check_passes_a_conforming_plugin(fake_dists, cli_runner: CliRunner) -> None:
    fake_dists.add("gaia-fake-check", CONFORMING_PLUGIN)
    code, checks = _check(cli_runner, "Gaia_Fake.Check")
    assert code == 0, checks
    assert list(checks) == ["entry point", "import", "hooks", "gaia_register_commands", "gaia_runners",
                            "config runner:fake", "protocol runner:fake", "gaia_provers", "config prover:fake",
                            "protocol prover:fake"]
    assert all(c["ok"] for c in checks.values())
    assert checks["gaia_register_commands"]["detail"] == "adds fake"
    text = cli_runner.invoke(cli, ["plugins", "--check", "gaia-fake-check"])
    assert text.exit_code == 0 and "ok    protocol runner:fake: satisfies Runner" in text.output


def test_check_fails_providers_that_break_their_protocol(fake_dists, cli_runner: CliRunner) -> None:
    fake_dists.add("gaia-fake-broken-providers", BROKEN_PROVIDERS_PLUGIN)
    code, checks = _check(cli_runner, "gaia-fake-broken-providers")
    assert code == PluginError.exit_code
    runner = checks["protocol runner:bad"]["detail"]
    assert "no method close()" in runner and "run(): takes no positional argument 'task'" in runner
    prover = checks["protocol prover:fake"]["detail"]
    assert "prove(): requires argument 'seed'" in prover and "verify(): takes no positional argument 'task'" in prover
    assert "scheme is 'other' but the spec registers 'fake'" in prover
    queue = checks["protocol queue:bad"]["detail"]
    assert "admit(): takes no keyword argument 'envelope'" in queue
    assert "next(): argument 'timeout' must be optional" in queue
    assert "no method done()" in queue
    assert all(checks[k]["remedy"] for k in checks if not checks[k]["ok"])


def test_check_fails_a_plugin_whose_config_table_does_not_parse(fake_dists, cli_runner: CliRunner,
                                                                gaia_home: Home) -> None:
    fake_dists.add("gaia-fake-check", CONFORMING_PLUGIN)
    gaia_home.config_file.write_text('[gaia-fake-check]\nlimit = "many"\n')
    code, checks = _check(cli_runner, "gaia-fake-check")
    assert code == PluginError.exit_code
    assert checks["config runner:fake"]["ok"] is False
    assert "limit must be an integer" in checks["config runner:fake"]["detail"]
    assert "protocol runner:fake" not in checks and checks["protocol prover:fake"]["ok"] is True


def test_check_fails_when_the_kernel_config_is_malformed(fake_dists, cli_runner: CliRunner, gaia_home: Home) -> None:
    fake_dists.add("gaia-fake-check", CONFORMING_PLUGIN)
    gaia_home.config_file.write_text("[node]\nbogus = 1\n")
    code, checks = _check(cli_runner, "gaia-fake-check")
    assert code == PluginError.exit_code and "bogus" in checks["config"]["detail"]


@pytest.mark.parametrize(("source", "check", "needle"), [
    (MISSPELT_PLUGIN, "hooks", "gaia_runner"),
    (WRONG_SIGNATURE_PLUGIN, "hooks", "strictness"),
    (IMPORT_ERROR_PLUGIN, "import", "ModuleNotFoundError"),
    (WRONG_SPEC_PLUGIN, "gaia_runners", "yielded QueueSpec; expected RunnerSpec"),
    (RAISING_ROLE_PLUGIN, "gaia_queues", "queue backend missing"),
    ("x = 1\n", "hooks", "implements no hook"),
], ids=["misspelt", "wrong-signature", "import-error", "wrong-spec", "raising-role-hook", "no-hooks"])
def test_check_fails_a_broken_plugin_on_the_step_that_breaks(fake_dists, cli_runner: CliRunner, source: str,
                                                             check: str, needle: str) -> None:
    fake_dists.add("gaia-fake-broken", source)
    code, checks = _check(cli_runner, "gaia-fake-broken")
    assert code == PluginError.exit_code
    assert checks[check]["ok"] is False and needle in checks[check]["detail"], checks[check]


def test_check_fails_an_entry_point_not_named_after_its_distribution(fake_dists, cli_runner: CliRunner) -> None:
    module = fake_dists.add("gaia-fake-named", CONFORMING_PLUGIN)
    info = fake_dists.root / "gaia_fake_named-0.1.0.dist-info"
    (info / "entry_points.txt").write_text(f"[gaia]\nfake-named = {module}:gaia_runners\n", encoding="utf-8")
    code, checks = _check(cli_runner, "gaia-fake-named")
    assert code == PluginError.exit_code
    detail = checks["entry point"]["detail"]
    assert "named 'fake-named', not after its distribution 'gaia-fake-named'" in detail
    assert "names an object" in detail


def test_check_of_a_plugin_that_is_not_installed_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["plugins", "--check", "gaia-nothing"])
    assert exit_.value.code == PluginError.exit_code
    err = capsys.readouterr().err
    assert "no plugin named 'gaia-nothing' is installed" in err and "Traceback" not in err


def test_check_reports_a_provider_whose_release_or_attributes_raise(fake_dists, cli_runner: CliRunner) -> None:
    fake_dists.add("gaia-fake-raising", RAISING_PROVIDER_PLUGIN)
    code, checks = _check(cli_runner, "gaia-fake-raising")
    assert code == PluginError.exit_code
    assert "inspecting it raised RuntimeError: no scheme today" in checks["protocol prover:odd"]["detail"]
    assert "close() raised OSError: already gone" in checks["release runner:odd"]["detail"]


@pytest.mark.parametrize("provider", [
    type("Loose", (), {"run": lambda self, *a, **k: None, "close": lambda self: None}),
    type("Extra", (), {"run": lambda self, task, retries=3: None, "close": lambda self, wait=True: None}),
], ids=["var-args", "extra-optional"])
def test_protocol_check_accepts_compatible_signatures(provider: type) -> None:
    assert plugin_check.protocol_problems(provider(), Runner) == []
