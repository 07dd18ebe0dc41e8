"""The config a run uses: presets merged, the schema's defaults filled in, every reference checked.

One function, :func:`resolve`, turns what the user wrote (``config/config.yaml``,
``--configfile``, ``--config``) into the validated config that the plan
(core/plan.py) is computed from and that every job sees. It is canonical: keys
sorted at every depth, so two configs with equal values are equal whatever their
key order, and a default written out equals a default left out. A problem is a
:class:`ConfigError` naming the key, before any job runs.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from referencing import Registry, Resource

from llamabench.core import (axes, backends, bisect, load, metrics, model_shape, options, platforms, presets, quality,
                             sessions, shapes, tuning)
from llamabench.core.errors import UserError

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
SCHEMA = SCHEMA_DIR / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that cannot run: the message names the key."""


def resolve(raw: Mapping[str, Any], config_dir: Path = Path("config"), kept: Iterable[str] = ()) -> dict[str, Any]:
    """The validated, canonical config of ``raw``. ``kept``: the versions results/history holds, which a
    comparison may name."""
    config = presets.resolve(copy.deepcopy(dict(raw)), config_dir)
    if "source" in config:
        raise ConfigError("source: is now sources:, a map of named trees: write 'sources: {main: {kind: ...}}' "
                          "with the same keys indented under a name")
    given = copy.deepcopy(config)
    validate(config)
    check(config, given, list(kept))
    return canonical(config)


def canonical(value: Any, key: str | None = None) -> Any:
    """Keys sorted at every depth, inside lists too: Snakemake compares params by their repr. An on/off axis
    (``key``) says on or off wherever YAML read a bare on/off as a boolean, so the two spellings are one config."""
    if isinstance(value, Mapping):
        return {name: canonical(value[name], name) for name in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item, key) for item in value]
    return axes.canonical(key, value) if key in axes.SWITCHES else value


@functools.cache
def _schema() -> tuple[dict[str, Any], Registry]:
    """The config schema and those it refers to, read with libyaml: every Snakemake parse reads them."""
    schema = yaml.load(SCHEMA.read_text(), Loader=yaml.CSafeLoader)
    registry = Registry().with_resources(
        (path.name, Resource.from_contents(yaml.load(path.read_text(), Loader=yaml.CSafeLoader)))
        for path in SCHEMA_DIR.glob("*.schema.yaml"))
    return schema, registry


def _with_defaults(validator_class: Any) -> Any:
    """A validator that fills in each property's ``default`` as it goes (as Snakemake's validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict[str, Any], instance: Any, schema: dict[str, Any]) -> Any:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def validate(config: dict[str, Any]) -> None:
    """Check ``config`` against the schema, filling in defaults in place; a ConfigError names the key."""
    schema, registry = _schema()
    validator = _with_defaults(Draft202012Validator)(schema, registry=registry)
    error = next(iter(validator.iter_errors(config)), None)  # in schema order: a missing kind before its consequences
    if error is not None:
        where = key_name(error.absolute_path)
        raise ConfigError(f"config key {where}: {error.message}" if where else f"config: {error.message}")


def key_name(path: Iterable[Any]) -> str:
    """``benchmark.groups.batch.ubatch_size[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def check(config: dict[str, Any], given: dict[str, Any], kept: list[str]) -> None:
    """Every name the config uses exists; defaults that depend on other entries are filled in."""
    sources, builds, models = list(config["sources"]), sorted(config["builds"]), list(config["models"])

    def names(where: str, found: Iterable[str], known: Iterable[str], section: str) -> None:
        """A name that is not defined is a config error, not an empty matrix."""
        known = set(known)
        for name in found:
            if name not in known:
                default = "" if _given(given, where) else " (its default)"
                raise ConfigError(f"{where} names '{name}'{default}, which is not under {section}: "
                                  "name ones that exist, or [] for all of them")

    for name, build in config["builds"].items():
        if "source" in build:
            names(f"builds.{name}.source", [build["source"]], sources, "sources")
        elif len(sources) > 1:
            raise ConfigError(f"builds.{name}.source is needed: there are several sources ({', '.join(sources)})")
        else:
            build["source"] = sources[0]
    for name, model in config["models"].items():
        if "quality_reference" in model:
            where = f"models.{name}.quality_reference"
            names(where, [model["quality_reference"]], models, "models")
            other = config["models"][model["quality_reference"]]
            if model["quality_reference"] == name or other["kind"] in ("synthetic", "quantized") \
                    or "quality_reference" in other:
                raise ConfigError(f"{where}: name another model with real weights of its own, itself measured "
                                  "against its own reference")
        if model["kind"] == "quantized":
            where = f"models.{name}"
            names(f"{where}.from", [model["from"]], models, "models")
            if config["models"][model["from"]]["kind"] in ("synthetic", "quantized"):
                raise ConfigError(f"{where}.from names a {config['models'][model['from']]['kind']} model: name "
                                  "one with real weights of its own")
            model.setdefault("build", builds[0])
            names(f"{where}.build", [model["build"]], builds, "builds")
            continue
        if model["kind"] != "synthetic":
            continue
        where = f"models.{name}"
        if "like" in model:
            names(f"{where}.like", [model["like"]], models, "models")
            if config["models"][model["like"]]["kind"] == "synthetic":
                raise ConfigError(f"{where}.like names a synthetic model: name a real one")
        else:
            if "type" not in model:
                raise ConfigError(f"{where}.type is needed (Q4_K_M, Q6_K, Q8_0, F16, ...)")
            try:
                shapes.shape_of(model)
            except UserError as err:
                raise ConfigError(f"{where}: {err}") from None
        model.setdefault("build", builds[0])  # the first by name: key order never means anything
        names(f"{where}.build", [model["build"]], builds, "builds")
    instances = builds + ([platforms.instance(b, p) for b in builds for p in config["platforms"]]
                          if platforms.clustered(config) else [])
    for name, spec in config["comparisons"].items():
        named = [spec["baseline"]] if "baseline" in spec else []
        # build@commit of a current build: a version this very run may keep (its source just changed)
        later = [n for n in named + spec["builds"] if n.rpartition("@")[0] in instances]
        names(f"comparisons.{name}", [n for n in named + spec["builds"] if n not in later], instances + kept,
              "builds (nor a version in results/history)")
    bench, serving = config["benchmark"], config["serving"]
    names("benchmark.builds", bench["builds"], builds, "builds")
    names("benchmark.models", bench["models"], models, "models")
    names("serving.builds", serving["builds"], builds, "builds")
    names("serving.models", serving["models"], models, "models")
    for name, group in bench["groups"].items():
        names(f"benchmark.groups.{name}.builds", group.get("builds", []), builds, "builds")
    for name, topology in config["rpc"]["topologies"].items():
        check_topology(config, name, topology, names)
    names("rpc.models", config["rpc"]["models"], models, "models")
    for i, cell in enumerate(config["rpc"]["cells"]):
        if "device" in cell:
            raise ConfigError(f"rpc.cells[{i}].device: an RPC cell runs on its topology's devices "
                              "(rpc.topologies.*.devices), not on a local cell's")
    for name, spec in config["tune"].items():
        check_study(config, name, spec, names)
    for name, scenario in serving["scenarios"].items():
        for combo in itertools.product(*scenario.values()):
            check_arrival({**serving["defaults"], **dict(zip(scenario, combo))}, f"serving.scenarios.{name}")
    check_splits(config)
    check_reuse(config)
    check_quality(config, names)
    for name, spec in config["load"].items():
        check_load(config, name, spec, names)
    for kind in (bisect.HISTORY, bisect.BISECT):
        for name, spec in config[kind].items():
            check_commit_study(config, kind, name, spec, names)
    try:
        platforms.check(config)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_study(config: dict[str, Any], name: str, spec: dict[str, Any], names: Any) -> None:
    """A study names builds and models that exist, and has something to choose from: at least two valid
    candidates, the defaults among them, a space small enough to write down."""
    where = f"tune.{name}"
    names(f"{where}.builds", spec["builds"], config["builds"], "builds")
    names(f"{where}.models", spec["models"], config["models"], "models")
    size = math.prod(len(tuning.values(found)) for found in spec["space"].values())
    if size > tuning.MAX_SPACE:
        raise ConfigError(f"{where}.space has {size} combinations, more than {tuning.MAX_SPACE}: narrow an axis")
    kind = tuning.kind_of(spec)
    for section in ("space", "candidates", "workload"):
        partials = spec[section].values() if section == "candidates" else [spec[section]]
        for axis in sorted({axis for partial in partials for axis in partial} - set(axes.names(kind))):
            raise ConfigError(f"{where}.{section}: {axis} is not an axis of {kind} cells, which objective "
                              f"{spec['objective']['metric']} measures")
    objective = spec["objective"]
    if objective["metric"] == "throughput" and objective["ttft_p90_limit_ms"] is None:
        raise ConfigError(f"{where}.objective.ttft_p90_limit_ms is needed: the most throughput under which TTFT limit?")
    if objective["metric"] == "mix" and not any(objective["weights"].values()):
        raise ConfigError(f"{where}.objective.weights: give pp or tg a weight above 0")
    for axis, found in spec["space"].items():
        if isinstance(found, dict) and "factor" in found and found["from"] < 1:
            raise ConfigError(f"{where}.space.{axis}: a range with a factor needs from >= 1")
    study = tuning.study(name, spec, config, sorted(config["builds"]), list(config["models"]))
    if study.reference not in study.by_id:
        why = dict(study.excluded).get("defaults", "")
        raise ConfigError(f"{where}: the defaults with this workload are not a valid candidate ({why})")
    weights = metrics.OBJECTIVES[objective["metric"]].weights(objective["weights"])
    for test in [test for test, weight in weights.items() if weight]:
        if not study.by_id[study.reference].params[metrics.TEST_AXIS[test]]:
            raise ConfigError(f"{where}: objective {objective['metric']} needs the {test} test, and "
                              f"{metrics.TEST_AXIS[test]} is 0 in its workload")
    if study.mode == "coordinate" and any(c.name for c in study.candidates):
        raise ConfigError(f"{where}.candidates: named candidates race all at once, and this space is searched "
                          f"one axis at a time ({len(study.candidates)} candidates): raise {where}.enumerate to "
                          f"{len(study.candidates)} or leave them out")
    if len(study.candidates) < 2:
        raise ConfigError(f"{where}: {len(study.candidates)} valid candidate(s), nothing to choose from: give "
                          f"{where}.space an axis with two values, or {where}.candidates")
    if quality.budget(spec) and not config["quality"]["enabled"]:
        raise ConfigError(f"{where}.quality: a quality budget needs quality cells, and quality.enabled is false")
    if quality.budget(spec) and all(quality.cell_id(c.params, config["benchmark"], True) == quality.REFERENCE
                                    for c in study.candidates):
        raise ConfigError(f"{where}.quality: a quality budget needs candidates that change a quality axis "
                          f"({', '.join(axes.names(axes.QUALITY))}); this study's change none")
    if spec["budget"]["rounds"] < spec["min_rounds"]:
        raise ConfigError(f"{where}.budget.rounds ({spec['budget']['rounds']}) is below {where}.min_rounds "
                          f"({spec['min_rounds']}): the winner could never be confirmed")


def check_commit_study(config: dict[str, Any], kind: str, name: str, spec: dict[str, Any], names: Any) -> None:
    """A bisect or history study reads the history of a git source, builds with a configured build, measures a
    metric its cells have, and says which commits: good and bad (or a history study's change), from and to (or
    refs)."""
    where = f"{kind}.{name}"
    names(f"{where}.source", [spec["source"]], config["sources"], "sources")
    found = config["sources"][spec["source"]]
    if found["kind"] != "git":
        raise ConfigError(f"{where}.source names '{spec['source']}', a {found['kind']} source: a study of llama.cpp's "
                          "history needs a git source (kind: git, url: ...)")
    if spec["build"] is not None:
        names(f"{where}.build", [spec["build"]], config["builds"], "builds")
    names(f"{where}.models", spec["models"], config["models"], "models")
    if kind == bisect.BISECT:
        refs = ("good" in spec) + ("bad" in spec)
        if "history" in spec:
            names(f"{where}.history", [spec["history"]], config["history"], "history")
            if refs:
                raise ConfigError(f"{where}: give good and bad, or history (whose change is bisected), not both")
        elif refs < 2:
            raise ConfigError(f"{where}: good and bad are needed (refs before and after the regression), or history")
        if "comparison" in spec:
            names(f"{where}.comparison", [spec["comparison"]], config["comparisons"], "comparisons")
            return
        if spec["max_rounds"] < spec["rounds"]:
            raise ConfigError(f"{where}.max_rounds ({spec['max_rounds']}) is below {where}.rounds ({spec['rounds']})")
    elif spec["refs"] and ("from" in spec or "to" in spec):
        raise ConfigError(f"{where}: give from and to, or refs, not both")
    elif not spec["refs"] and not ("from" in spec and "to" in spec):
        raise ConfigError(f"{where}: from and to are needed (the first and the last ref of the series), or refs")
    test = metrics.TEST_AXIS[spec["metric"]]
    for cell_id, params in bisect.cells(spec, config["benchmark"]).items():
        if not params[test]:
            raise ConfigError(f"{where}.cells: metric {spec['metric']} needs the {spec['metric']} test, and {test} "
                              f"is 0 in cell {cell_id}")


def _swept(config: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any], list[str]]]:
    """Every cell the benchmark and serving sections sweep, as (where, kind, params, builds): the config key that
    asks for it, its axes' kind, its parameters, the builds it runs on."""
    bench, serving = config["benchmark"], config["serving"]
    swept = [(f"benchmark.groups.{name}", axes.BENCHMARK, bench["defaults"], group,
              group.get("builds") or bench["builds"]) for name, group in bench["groups"].items()]
    swept += [(f"serving.scenarios.{name}", axes.SERVING, serving["defaults"], scenario, serving["builds"])
              for name, scenario in serving["scenarios"].items()]
    swept += [(f"benchmark.include[{i}]", axes.BENCHMARK, {**bench["defaults"], **partial}, {}, bench["builds"])
              for i, partial in enumerate(bench["include"])]
    swept += [(f"quality.cells[{i}]", axes.BENCHMARK, {**bench["defaults"], **partial}, {}, bench["builds"])
              for i, partial in enumerate(config["quality"]["cells"])]
    swept += [("benchmark.defaults", axes.BENCHMARK, bench["defaults"], {}, bench["builds"]),
              ("serving.defaults", axes.SERVING, serving["defaults"], {}, serving["builds"])]
    for where, kind, defaults, sweep, builds in swept:
        values = {axis: v for axis, v in sweep.items() if axis in axes.AXES and isinstance(v, list)}
        for combo in itertools.product(*values.values()):
            yield where, kind, {**defaults, **dict(zip(values, combo))}, builds or list(config["builds"])


def check_splits(config: dict[str, Any]) -> None:
    """A split over several GPUs that llama.cpp would refuse (core/backends.py ``split_problem``), or a device no
    build of the group can have (``device_problem``), is a config error naming the group or scenario, before any
    job, rather than a failed cell; so is a quantised V cache without flash attention (core/quality.py)."""
    for where, kind, params, builds in _swept(config):
        if why := quality.flash_attention_problem(params):
            raise ConfigError(f"{where}: {why}")
        for build in builds:
            backend = backends.of(config["builds"][build]["cmake_options"])
            if why := backends.split_problem(params, kind, backend, build) or backends.device_problem(
                    params, kind, backend, build):
                raise ConfigError(f"{where}: {why}")


def check_reuse(config: dict[str, Any]) -> None:
    """Cache reuse asked of a sliding-window model without a full-size SWA cache (core/sessions.py
    ``reuse_problem``), where the model's shape is already known (cached by its sha256 once any job read the
    file): a config error naming the scenario or sweep. Before the first read the cell itself says so, skipped."""
    cells = [(where, params) for where, kind, params, _ in _swept(config) if kind == axes.SERVING]
    cells += [(f"load.{name}.settings", load.sweep(name, spec, config, [], []).params)
              for name, spec in config["load"].items()]
    for where, params in cells:
        if not axes.value(params, "cache_reuse", axes.SERVING):
            continue
        for name, model in config["models"].items():
            shape = model_shape.known(model.get("sha256"))
            if shape and (why := sessions.reuse_problem(params, shape.get("sliding_window"))):
                raise ConfigError(f"{where}: {why} (model {name})")


def check_quality(config: dict[str, Any], names: Any) -> None:
    """Quality cells name builds and models that exist, and a text long enough for two chunks: llama-perplexity
    needs 2 x ctx_size tokens, and a token is at least a byte (a longer text that still tokenises short fails its
    reference with the tool's own words)."""
    spec = config["quality"]
    names("quality.builds", spec["builds"], config["builds"], "builds")
    names("quality.models", spec["models"], config["models"], "models")
    if spec["text"] is None:
        return
    text = Path(spec["text"]).expanduser()
    if not text.is_file():
        raise ConfigError(f"quality.text: {text} is not a file")
    if (size := text.stat().st_size) < 2 * spec["ctx_size"]:
        raise ConfigError(f"quality.text: {text} has {size} bytes, fewer than the 2 x quality.ctx_size = "
                          f"{2 * spec['ctx_size']} tokens llama-perplexity needs: name a longer text")


def check_arrival(params: Mapping[str, Any], where: str) -> None:
    """A serving cell's arrival is whole: an open one has a rate, a closed one none; burstiness is gamma's; an
    open arrival's cap on requests in flight leaves every slot something to serve; a dataset exists."""
    arrival = params.get("arrival", "closed")
    if arrival != "closed" and params.get("rate") is None:
        raise ConfigError(f"{where}: arrival {arrival} needs a rate (requests per second)")
    if arrival == "closed" and params.get("rate") is not None:
        raise ConfigError(f"{where}: rate is for open arrivals (constant, poisson, gamma): set arrival, or leave "
                          "rate out to keep concurrency requests in flight")
    if params.get("burstiness", 1.0) != 1.0 and arrival != "gamma":
        raise ConfigError(f"{where}: burstiness shapes gamma arrivals only (arrival is {arrival})")
    if arrival != "closed" and params["concurrency"] < params["parallel"]:
        raise ConfigError(f"{where}: concurrency {params['concurrency']} caps an open arrival's requests in flight "
                          f"below parallel {params['parallel']}: raise it (the most requests in flight)")
    if params.get("dataset") and not Path(params["dataset"]).expanduser().is_file():
        raise ConfigError(f"{where}: dataset {params['dataset']} is not a file")
    if params.get("trace") and (arrival != "closed" or params.get("dataset") or sessions.conversational(
            {key: value for key, value in params.items() if key != "trace"})):
        raise ConfigError(f"{where}: a trace sets its own schedule, sessions and lengths: leave arrival, dataset, "
                          "turns and prefix_tokens at their defaults")
    if why := sessions.problem(params):
        raise ConfigError(f"{where}: {why}")


def check_load(config: dict[str, Any], name: str, spec: dict[str, Any], names: Any) -> None:
    """A load sweep names builds and models that exist, has a whole arrival, and enough requests per level for
    each objective percentile."""
    where = f"load.{name}"
    names(f"{where}.builds", spec["builds"], config["builds"], "builds")
    names(f"{where}.models", spec["models"], config["models"], "models")
    sweep = load.sweep(name, spec, config, sorted(config["builds"]), list(config["models"]))
    check_arrival({**sweep.params, "rate": 1.0}, f"{where}.settings")
    needed = config["serving"]["min_requests"]
    turns = axes.value(sweep.params, "turns", axes.SERVING)  # a conversation sweep's requests count conversations
    for metric, by_q in spec["objectives"].items():
        for q in by_q:
            for key, count in (("requests", spec["requests"]), ("pilot.requests", load.pilot_requests(spec))):
                if q in needed and count * turns < needed[q] and not (key == "pilot.requests" and spec["rates"]):
                    raise ConfigError(f"{where}.objectives.{metric}.{q} needs at least {needed[q]} requests per level "
                                      f"(serving.min_requests.{q}), and {where}.{key} is {count}"
                                      + (f" conversations of {turns} turns" if turns > 1 else ""))


def check_topology(config: dict[str, Any], name: str, topology: dict[str, Any], names: Any) -> None:
    """The builds a topology names exist, are one commit and speak RPC; no worker binds wider than asked."""
    where = f"rpc.topologies.{name}"
    roles = [("client", topology["client"])] + [(f"workers[{i}].build", w["build"])
                                                for i, w in enumerate(topology["workers"]) if "build" in w]
    for role, build in roles:
        names(f"{where}.{role}", [build], config["builds"], "builds")
        source_of, client_source = config["builds"][build]["source"], config["builds"][topology["client"]]["source"]
        if source_of != client_source:
            raise ConfigError(f"{where}.{role} names build '{build}' of source '{source_of}', the client's is "
                              f"'{client_source}': RPC client and workers must be one commit")
        if not options.enabled(config["builds"][build]["cmake_options"], "GGML_RPC"):
            raise ConfigError(f"{where}.{role} names build '{build}', which is built without -DGGML_RPC=ON")
    needed = {"local": ["build"], "netns": ["build"], "ssh": ["host", "rpc_server", "port"], "static": ["address"]}
    for i, worker in enumerate(topology["workers"]):
        for key in needed[worker["kind"]]:
            if key not in worker:
                raise ConfigError(f"{where}.workers[{i}] ({worker['kind']}) needs '{key}'")
        bind = worker.get("bind", "127.0.0.1")
        if options.needs_public_opt_in(bind) and not topology["allow_public_bind"]:
            raise ConfigError(f"{where}.workers[{i}].bind is {bind}: the RPC server has no authentication or "
                              "encryption, so binding it beyond loopback or a private network needs "
                              f"allow_public_bind: true in {where}")
    if topology["link_rates"] != ["unlimited"] and not any(w["kind"] == "netns" for w in topology["workers"]):
        raise ConfigError(f"{where}.link_rates caps netns links only, and this topology has no netns worker")


def warnings(config: Mapping[str, Any], kept: Iterable[str]) -> list[str]:
    """What a valid config still deserves a word about before the run."""
    found = []
    for name, topology in config["rpc"]["topologies"].items():
        for i, worker in enumerate(topology["workers"]):
            bind = worker.get("bind", "127.0.0.1")
            if options.needs_public_opt_in(bind):
                found.append(f"rpc.topologies.{name}.workers[{i}] binds {bind}: anyone who reaches it can run "
                             "computations and read or write tensors on that worker (no authentication, no "
                             "encryption).")
    kept = set(kept)
    for name, spec in config["comparisons"].items():
        for version in [spec.get("baseline", ""), *spec["builds"]]:
            if "@" in version and version not in kept and version.rpartition("@")[0] in config["builds"]:
                found.append(f"comparisons.{name}: {version} is not in results/history yet; its rows stay empty "
                             "until it is")
    return found


def _given(given: Mapping[str, Any], dotted: str) -> bool:
    """Whether the user's config sets the dotted key (else the schema's default applies)."""
    node: Any = given
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True
