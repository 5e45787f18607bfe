import pytest

from magnipath import __version__
from magnipath.cli import build_parser, main


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_every_subcommand_has_help_json_and_quiet():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices, "no subcommands registered"
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "--json" in text and "--quiet" in text, name


def test_train_loss_choices_are_the_known_losses():
    # the CLI lists them literally (no torch import to build the parser): keep them in step
    import argparse

    from magnipath.losses import LOSSES as BUILT
    from magnipath.train import LOSSES

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    loss = next(a for a in sub.choices["train"]._actions if "--loss" in a.option_strings)
    assert tuple(loss.choices) == tuple(LOSSES) == tuple(BUILT)
