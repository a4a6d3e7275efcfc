"""Signed session cookies and CSRF tokens."""

import time

import pytest

from app.ui.session import ANONYMOUS, CsrfError, SessionSigner

SECRET = b"s" * 32


def test_a_cookie_round_trips_to_the_same_session() -> None:
    signer = SessionSigner(SECRET, ["key-one"])
    fingerprint = signer.check_key("key-one")
    assert fingerprint is not None
    session = signer.new(fingerprint)

    loaded = signer.load(signer.cookie_value(session))

    assert loaded is not None
    assert (loaded.nonce, loaded.key_fingerprint) == (session.nonce, fingerprint)
    assert loaded.csrf_token == session.csrf_token
    assert not loaded.fresh
    assert "key-one" not in signer.cookie_value(session)


def test_wrong_keys_are_refused() -> None:
    signer = SessionSigner(SECRET, ["key-one"])

    assert signer.check_key("key-two") is None
    assert signer.check_key("") is None
    assert signer.check_key("key-one ") is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # signature
        lambda v: "x" + v,  # nonce
        lambda v: v.replace(".", ".9", 1),  # expiry
        lambda v: "",
        lambda v: "a.b.c",
        lambda v: v + "." + "x" * 300,
    ],
)
def test_a_tampered_cookie_is_no_session(tamper: object) -> None:
    signer = SessionSigner(SECRET, ["key-one"])
    value = signer.cookie_value(signer.new(signer.check_key("key-one") or ""))

    assert callable(tamper)
    assert signer.load(tamper(value)) is None


def test_another_secret_or_a_removed_key_ends_the_session() -> None:
    signer = SessionSigner(SECRET, ["key-one", "key-two"])
    value = signer.cookie_value(signer.new(signer.check_key("key-two") or ""))

    assert SessionSigner(b"t" * 32, ["key-one", "key-two"]).load(value) is None
    assert SessionSigner(SECRET, ["key-one"]).load(value) is None
    assert SessionSigner(SECRET, ["key-one", "key-two"]).load(value) is not None


def test_an_expired_cookie_is_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = SessionSigner(SECRET, ["key-one"])
    value = signer.cookie_value(signer.new(signer.check_key("key-one") or ""))
    later = time.time() + 13 * 3600
    monkeypatch.setattr("app.ui.session.time.time", lambda: later)

    assert signer.load(value) is None


def test_anonymous_sessions_only_while_keys_are_off() -> None:
    open_signer = SessionSigner(SECRET, [])
    value = open_signer.cookie_value(open_signer.new())

    assert open_signer.load(value) is not None
    assert open_signer.new().key_fingerprint == ANONYMOUS
    assert SessionSigner(SECRET, ["key-one"]).load(value) is None


def test_csrf_token_must_match_the_session() -> None:
    signer = SessionSigner(SECRET, [])
    session = signer.load(signer.cookie_value(signer.new()))
    other = signer.load(signer.cookie_value(signer.new()))
    assert session is not None
    assert other is not None

    signer.check_csrf(session, session.csrf_token)
    for token in (None, "", other.csrf_token, session.csrf_token[:-1]):
        with pytest.raises(CsrfError):
            signer.check_csrf(session, token)
    # A session made during this very request has no page that could carry its token.
    fresh = signer.new()
    with pytest.raises(CsrfError):
        signer.check_csrf(fresh, fresh.csrf_token)
