"""The error helpers: how much of the client's input an error quotes, and upstream scrubbing."""

from __future__ import annotations

from routemw.errors import ECHO_LIMIT, Action, UpstreamError, echo


def test_echo_keeps_short_input_whole_and_cuts_long_input_with_an_ellipsis() -> None:
    assert echo("gpt-4o") == "gpt-4o"
    assert echo("x" * ECHO_LIMIT) == "x" * ECHO_LIMIT
    assert echo("x" * (ECHO_LIMIT + 1)) == "x" * ECHO_LIMIT + "…"
    assert echo("y" * 100_000) == "y" * ECHO_LIMIT + "…"


def test_scrub_blanks_every_piece_of_upstream_text_longest_secret_first() -> None:
    error = UpstreamError(
        "key sk-abcdefgh-long and sk-abcdefgh",
        provider="p",
        action=Action.STOP,
        status=400,
        error_type="sk-abcdefgh",
        param="sk-abcdefgh",
        code="sk-abcdefgh",
        upstream_request_id="req sk-abcdefgh",
    )
    error.scrub(("sk-abcdefgh-long", "sk-abcdefgh"))
    assert error.message == str(error) == "key [redacted] and [redacted]"
    assert (error.error_type, error.param, error.code) == ("[redacted]", "[redacted]", "[redacted]")
    assert error.upstream_request_id == "req [redacted]"
    assert error.envelope()["error"]["message"] == "key [redacted] and [redacted]"
