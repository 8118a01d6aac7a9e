"""Unit tests of plan/body.py: the guide's _reindex body, parsed and checked before any request."""

from __future__ import annotations

import pytest

from remote_reindex.errors import UsageError
from remote_reindex.plan.body import body_from_dict, parse_body, parse_remote_host, time_value_seconds

GUIDE_BODY = """{
  "source": {
    "remote": {"host": "https://otherhost:9200", "username": "user", "password": "${SRC_PW}"},
    "index": "my-index-000001",
    "query": {"match": {"test": "data"}}
  },
  "dest": {"index": "my-new-index-000001"}
}"""


def _err(text: str | dict) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse_body(text) if isinstance(text, str) else body_from_dict(text)
    return info.value


def test_the_guides_body_parses_with_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRC_PW", 'p"w\\1')  # quotes and backslashes must survive the JSON
    body = parse_body(GUIDE_BODY)
    assert body.remote is not None
    assert (body.remote.scheme, body.remote.host, body.remote.port) == ("https", "otherhost", 9200)
    assert body.remote.host_port == "otherhost:9200"
    assert body.remote.username == "user" and body.remote.password == 'p"w\\1'
    assert body.indices == ("my-index-000001",)
    assert body.dest_index == "my-new-index-000001"
    assert body.query == {"match": {"test": "data"}}
    assert (body.op_type, body.conflicts, body.max_docs) == ("index", "abort", None)


def test_secrets_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRC_PW", "s3cr3t-value")
    body = parse_body(GUIDE_BODY)
    assert "s3cr3t-value" not in repr(body)
    assert "s3cr3t-value" not in repr(body.remote)


def test_missing_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SRC_PW", raising=False)
    e = _err(GUIDE_BODY)
    assert e.message == "the body refers to ${SRC_PW}, but the environment variable SRC_PW is not set"
    assert e.fix == "export SRC_PW=... before running."


def test_all_supported_fields() -> None:
    body = body_from_dict({
        "source": {
            "remote": {"host": "http://h:9201/prefix/", "api_key": "abc==", "headers": {"X-A": "1"}, "socket_timeout": "2m", "connect_timeout": "5s"},
            "index": ["a", "b-*"], "_source": ["x", "y"], "size": 500,
        },
        "dest": {"index": "out", "op_type": "create", "pipeline": "p", "version_type": "external", "routing": "=r1"},
        "conflicts": "proceed",
        "max_docs": 10,
    })
    assert body.remote is not None and body.remote.path_prefix == "/prefix"
    assert body.remote.api_key == "abc==" and dict(body.remote.headers) == {"X-A": "1"}
    assert body.indices == ("a", "b-*")
    assert body.source_filter == ["x", "y"] and body.size == 500
    assert (body.op_type, body.pipeline, body.version_type, body.routing) == ("create", "p", "external", "=r1")
    assert (body.conflicts, body.max_docs) == ("proceed", 10)
    assert time_value_seconds(body.remote.socket_timeout, 1) == 120
    assert time_value_seconds(body.remote.connect_timeout, 1) == 5


def test_comma_separated_index_and_pattern_without_dest_index() -> None:
    body = body_from_dict({"source": {"index": "logs-*, metrics-1"}, "dest": {}})
    assert body.indices == ("logs-*", "metrics-1")
    assert body.dest_index is None


def test_top_level_size_is_max_docs() -> None:
    assert body_from_dict({"source": {"index": "a"}, "dest": {"index": "b"}, "size": 7}).max_docs == 7
    e = _err({"source": {"index": "a"}, "dest": {"index": "b"}, "size": 7, "max_docs": 8})
    assert e.message == "both 'size' and 'max_docs' are set at the top level"


@pytest.mark.parametrize("raw, message", [
    ({"source": {"index": "a"}, "dest": {"index": "b"}, "script": 5},
     "'script' must be a script object like {\"source\": \"...\", \"lang\": \"painless\"} (or a string), got 5"),
    ({"source": {"index": "a", "slice": {"id": 0, "max": 2}}, "dest": {"index": "b"}},
     "'source.slice' cannot be used with a remote source (remote reindex cannot slice)"),
    ({"source": {"index": "a"}}, "the body has no 'dest' object"),
    ({"dest": {"index": "b"}}, "the body has no 'source' object"),
    ({"source": {"index": ""}, "dest": {"index": "b"}}, "source.index is missing or empty"),
    ({"source": {"index": "a"}, "dest": {}}, "dest.index is missing"),
    ({"source": {"index": "a"}, "dest": {"index": "b", "op_type": "upsert"}}, "dest.op_type must be 'index' or 'create', got 'upsert'"),
    ({"source": {"index": "a"}, "dest": {"index": "b"}, "conflicts": "ignore"}, "conflicts must be 'abort' or 'proceed', got 'ignore'"),
    ({"source": {"index": "a"}, "dest": {"index": "b"}, "max_docs": 0}, "max_docs must be a positive whole number, got 0"),
    ({"source": {"index": "a", "query": "x"}, "dest": {"index": "b"}}, "source.query must be a JSON object (a query DSL clause)"),
    ({"source": {"index": "a", "remote": {"host": "https://h:9200", "username": "u"}}, "dest": {"index": "b"}},
     "source.remote.username is set without a password"),
    ({"source": {"index": "a", "remote": {"host": "https://h:9200", "password": "p"}}, "dest": {"index": "b"}},
     "source.remote.password is set without a username"),
    ({"source": {"index": "a", "remote": {"host": "https://h:9200", "username": "u", "password": "p", "api_key": "k"}}, "dest": {"index": "b"}},
     "source.remote has both username and api_key"),
    ({"source": {"index": "a", "remote": {"host": "https://h:9200", "socket_timeout": "soon"}}, "dest": {"index": "b"}},
     "source.remote.socket_timeout must be a time value like \"30s\", got 'soon'"),
    ({"source": {"index": "a"}, "dest": {"index": "b"}, "extra": 1}, "unsupported field in the body: extra"),
])
def test_bad_bodies_say_what_is_wrong(raw: dict, message: str) -> None:
    e = _err(raw)
    assert e.message == message
    assert e.fix  # always a second line: what to do
    assert e.exit_code == 2


def test_tls_keys_in_remote_are_refused_with_the_servers_words() -> None:
    e = _err({"source": {"index": "a", "remote": {"host": "https://h:9200", "ssl": {"certificate_authorities": "ca.pem"}}}, "dest": {"index": "b"}})
    assert e.message == "TLS settings do not belong in source.remote: ssl (the destination answers 'Unsupported fields in [remote]')"
    assert "--source-ca" in e.fix


@pytest.mark.parametrize("host, message", [
    ("otherhost:9200", "source.remote.host 'otherhost:9200' has no scheme"),
    ("https://otherhost", "source.remote.host 'https://otherhost' has no port"),
    ("ftp://otherhost:21", "source.remote.host 'ftp://otherhost:21' has scheme 'ftp'"),
    ("https://otherhost:99999", "source.remote.host 'https://otherhost:99999' has an invalid port"),
    ("https://otherhost:9200/?a=b", "source.remote.host 'https://otherhost:9200/?a=b' has a query or fragment"),
])
def test_remote_host_needs_scheme_host_and_port(host: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_remote_host(host)
    assert info.value.message == message


def test_ipv6_host_port() -> None:
    body = body_from_dict({"source": {"index": "a", "remote": {"host": "https://[::1]:9200"}}, "dest": {"index": "b"}})
    assert body.remote is not None and body.remote.host_port == "[::1]:9200"


@pytest.mark.parametrize("text, message", [
    ("", "the body is empty"),
    ("{not json", "the body is not valid JSON"),
    ("[1, 2]", "the body must be a JSON object"),
])
def test_not_a_body(text: str, message: str) -> None:
    assert _err(text).message.startswith(message)


def test_time_values() -> None:
    assert time_value_seconds("500ms", 1) == 0.5
    assert time_value_seconds("1h", 1) == 3600
    assert time_value_seconds(None, 42.0) == 42.0


def test_script_is_kept_for_the_server_engine() -> None:
    script = {"source": "ctx._source.x = 1", "lang": "painless"}
    body = body_from_dict({"source": {"index": "a"}, "dest": {"index": "b"}, "script": script})
    assert body.script == script
    assert body.raw["script"] == script


def test_a_utf8_bom_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows editors save JSON with a byte order mark; it is not part of the body."""
    monkeypatch.setenv("SRC_PW", "pw")
    for text in ("\ufeff" + GUIDE_BODY, ("\ufeff" + GUIDE_BODY).encode("utf-8")):
        body = parse_body(text)
        assert body.indices == ("my-index-000001",)
        assert body.dest_index == "my-new-index-000001"


def test_credentials_in_the_remote_host_are_refused_and_not_shown() -> None:
    e = _err({"source": {"index": "a", "remote": {"host": "https://reindexer:S3cretXYZ@h:9200"}}, "dest": {"index": "b"}})
    assert e.message == "source.remote.host 'https://h:9200' has a user name or password in it (not shown)"
    assert e.fix == 'Remove USER:PASSWORD@ from source.remote.host and put them in source.remote.username and source.remote.password (e.g. "${SRC_PASSWORD}").'
    assert "S3cretXYZ" not in e.message + e.fix
