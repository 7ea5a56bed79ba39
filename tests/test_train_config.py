"""TrainConfig: sections, flat and nested keys, research aliases, validation up front."""

from __future__ import annotations

import json

import pytest

from distill.errors import ConfigError
from distill.train.config import TrainConfig, build_arg_parser, config_from_sources, parse_train_args

AB = {"model1": "a", "model2": "b"}


def test_config_yaml_cli_merge_and_validation(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("task: arith\nmodel1: a\nmodel2: b\nlr-s1: 0.001\nis_quality: 'false'\nepochs: 5\n")
    cfg = parse_train_args(["--config", str(y), "--epochs", "2", "--is-router", "true", "--freeze_s2", "True"])
    assert (cfg.data.task, cfg.optim.lr_s1, cfg.data.is_quality, cfg.optim.epochs, cfg.router.routing,
            cfg.students.freeze_s2) == ("arith", 0.001, False, 2, "learned", True)
    with pytest.raises(ConfigError, match="expected true or false"):
        config_from_sources({}, {**AB, "is_quality": "maybe"})
    with pytest.raises(ConfigError, match="--model2 is required"):
        TrainConfig.from_flat(model1="a")
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig.from_flat(**AB, load_in_4bit=True, load_in_8bit=True)
    assert TrainConfig.from_flat(model1="a", is_sft=True).students.model2 == ""


def test_unknown_keys_are_errors_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown option 'balanse_weight' in config file; did you mean 'balance_weight'"):
        config_from_sources({"balanse_weight": 1}, AB)
    with pytest.raises(ConfigError, match="unknown option 'lr_s3'"):
        config_from_sources({"lr_s3": 1}, AB)
    with pytest.raises(ConfigError, match="unknown option 'router.hiden'"):
        config_from_sources({"router": {"hiden": 3}}, AB)


@pytest.mark.parametrize("bad, flag", [({"kl_weight": -1}, "--peer_weight"), ({"peer_temperature": 0}, "--peer_temperature"),
                                       ({"balance_weight": -5}, "--balance_weight"), ({"lr_misc": 0}, "--lr_router"),
                                       ({"peer": "magic"}, "--peer"), ({"routing": "smart"}, "--routing"),
                                       ({"lora_targets": " , "}, "--lora_targets"), ({"gumbel_tau_min": 2.0}, "gumbel_tau"),
                                       ({"task": "nope"}, "--task"), ({"eval_bs": 0}, "--eval_bs"),
                                       ({"lora_r": 2.5}, "--lora_r")])
def test_every_range_is_checked_when_the_config_is_built(bad, flag):
    """Values that used to pass the config and fail only after the students loaded."""
    with pytest.raises(ConfigError, match=flag):
        TrainConfig.from_flat(**AB, **bad)


def test_research_aliases_map_to_the_new_names():
    cfg = TrainConfig.from_flat(**AB, use_kl=True, is_router=True, kl_weight=0.5, lr_misc=0.01)
    assert (cfg.peer.mode, cfg.router.routing, cfg.peer.weight, cfg.optim.lr_router) == ("auto", "learned", 0.5, 0.01)
    assert TrainConfig.from_flat(**AB, use_kl=True, peer_loss="uld").peer.mode == "uld"
    assert TrainConfig.from_flat(**AB, use_kl=False, peer="kl").peer.mode == "none"
    assert TrainConfig.from_flat(**AB, is_router=False, routing="learned").router.routing == "all"
    # --use_kl true on the command line keeps the mode a YAML file chose
    assert config_from_sources({"peer": "hidden"}, {**AB, "use_kl": "true"}).peer.mode == "hidden"
    # the canonical key beats its old name
    assert TrainConfig.from_flat(**AB, peer_weight=0.3, kl_weight=0.9).peer.weight == 0.3


def test_nested_yaml_sections_and_flat_round_trip(tmp_path):
    cfg = config_from_sources({"router": {"balance_weight": 2.0, "hidden": 32}, "lora": {"lora_r": 4}}, AB)
    assert (cfg.router.balance_weight, cfg.router.hidden, cfg.lora.r) == (2.0, 32, 4)
    # train_config.json is flat and loads again as a --config
    f = tmp_path / "train_config.json"
    f.write_text(json.dumps(cfg.to_flat()))
    again = parse_train_args(["--config", str(f)])
    assert again.runtime.config == str(f)
    again.runtime.config = None
    assert again == cfg


def test_help_groups_flags_by_section_and_explains_peer_modes():
    text = build_arg_parser().format_help()
    for section in ("data:", "students:", "lora:", "optim:", "router:", "peer:", "eval:", "runtime:", "aliases:"):
        assert section in text
    for mode in ("kl:", "hidden:", "uld:", "auto:", "none:"):
        assert mode in text
    assert "--use_kl" in text and "--is_router" in text


def test_builders_take_their_typed_section(tiny_llama, tiny_qwen2):
    from distill.peer.build import build_peer
    from distill.router.build import build_router
    from distill.router.router import CoTRouter, RandomRouter
    from distill.students.load import load_student

    cfg = TrainConfig.from_flat(model1=str(tiny_llama), model2=str(tiny_qwen2), routing="learned",
                                balance_weight=0.7, router_hidden=16, peer="uld", peer_weight=0.2, lora_r=4)
    r = build_router(cfg.router, 8)
    assert isinstance(r, CoTRouter) and r.balance_weight == 0.7 and r.net[0].out_features == 16
    assert isinstance(build_router(TrainConfig.from_flat(**AB, routing="random").router, 8), RandomRouter)
    assert build_router(TrainConfig.from_flat(**AB, routing="all").router, 8) is None
    s1, t1 = load_student(str(tiny_llama), cfg.students, cfg.lora)
    s2, t2 = load_student(str(tiny_qwen2), cfg.students, cfg.lora, flag="--model2")
    peer = build_peer(cfg.peer, s1, s2, t1, t2)
    assert peer.mode == "uld" and peer.kl_weight == 0.2
    assert build_peer(TrainConfig.from_flat(**AB, peer="none").peer, s1, s2, t1, t2) is None
    with pytest.raises(ConfigError, match="--peer kl needs both students"):
        build_peer(TrainConfig.from_flat(**AB, peer="kl").peer, s1, s2, t1, t2)


def test_defaults_are_the_full_method_and_recipes_are_one_flag():
    cfg = TrainConfig.from_flat(**AB)
    assert (cfg.router.routing, cfg.peer.mode, cfg.data.is_quality) == ("learned", "auto", True)
    want = {"full": ("learned", "auto", False), "routing_only": ("learned", "none", False),
            "peer_only": ("all", "auto", False), "random_routing": ("random", "auto", False),
            "separate": ("all", "none", False), "solo1": ("all", "none", True), "solo2": ("all", "none", True)}
    for name, (routing, peer, sft) in want.items():
        c = TrainConfig.from_flat(**AB, recipe=name)
        assert (c.router.routing, c.peer.mode, c.students.is_sft, c.runtime.recipe) == (routing, peer, sft, name)
    assert TrainConfig.from_flat(**AB, recipe="solo2").students.model1 == "b"
    # an explicit key beats the recipe; is_sft alone implies no routing and no peer
    assert TrainConfig.from_flat(**AB, recipe="separate", balance_weight=0.5, routing="random").router.routing == "random"
    assert TrainConfig.from_flat(model1="a", is_sft=True).router.routing == "all"
    with pytest.raises(ConfigError, match="--recipe must be one of"):
        TrainConfig.from_flat(**AB, recipe="best")
    # --recipe on the command line beats a config file's method keys (the demo config sets them)
    yaml = {"routing": "learned", "peer": "auto", **AB}
    assert config_from_sources(yaml, {"recipe": "separate"}).router.routing == "all"
    assert config_from_sources(yaml, {"recipe": "separate"}).peer.mode == "none"
    assert config_from_sources({**yaml, "recipe": "separate"}, {}).router.routing == "learned"


def test_route_styles_parse_and_fail_with_the_flag_named():
    from distill.router.config import parse_route_styles
    from distill.train.setup import check_route_styles

    assert parse_route_styles("tot=2, program=both,cot=1") == {"tot": 2, "program": 3, "cot": 1}
    assert parse_route_styles("") == {}
    cfg = TrainConfig.from_flat(**AB, routing="styles", route_styles="tot=2")
    assert cfg.router.routing == "styles" and cfg.router.route_styles == "tot=2"
    for bad, msg in (("tot", "is not STYLE=1|2|both"), ("tot=3x", "is not STYLE"), ("=2", "is not STYLE"),
                     ("tot=2,tot=1", "twice")):
        with pytest.raises(ConfigError, match=msg):
            TrainConfig.from_flat(**AB, routing="styles", route_styles=bad)
    with pytest.raises(ConfigError, match="--routing styles needs --route_styles"):
        TrainConfig.from_flat(**AB, routing="styles")
    with pytest.raises(ConfigError, match="only read with --routing styles"):
        TrainConfig.from_flat(**AB, route_styles="tot=2")
    check_route_styles("tot=2", [{"style": "tot"}, {"style": "cot"}])
    with pytest.raises(ConfigError, match=r"'tott', which no training path has \(styles in the data: cot, tot\)"):
        check_route_styles("tott=2", [{"style": "tot"}, {"style": "cot"}])
