#!/usr/bin/env python3
"""Drives a Knowledge Vault MCP server with the official MCP Python SDK (`pip install mcp`).

Usage:
    mcp_sdk_client.py http URL                    # Streamable HTTP, e.g. http://127.0.0.1:3001/mcp
    mcp_sdk_client.py stdio COMMAND [ARG...]      # stdio, e.g. target/debug/knowledge-vault mcp

Connects, lists the tools, calls every documentation tool with arguments taken from the previous
answers (first repository, its first document, a word of that document as a search query), and
checks that an escaping path comes back as a tool error. Prints one JSON object on stdout:
    {"sdk": "...", "protocol_version": "...", "server": {...}, "tools": [...], "calls": {...}}
Exits non-zero, with the reason on stderr, if anything is off. Used by the Rust test
`interop_python_sdk_*` (tests/mcp_server.rs); works with mcp 1.x and 2.x.
"""

import asyncio
import importlib.metadata
import json
import os
import re
import sys

import mcp

# The SDK starts a stdio server with a minimal environment; these are passed on.
PASSED_ENV = ("DOCS_DIR", "MCP_SERVER_URL", "ANTHROPIC_API_KEY", "LOG_LEVEL", "CACHE_DIR", "DOCS_REFRESH_SECS")

EXPECTED_TOOLS = {"list_repositories", "list_repo_docs", "get_documentation", "search_documentation"}


def field(obj, *names, default=None):
    """Reads a pydantic field under its 2.x (snake_case) or 1.x (camelCase) name."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def value_of(result):
    """The JSON value of a CallToolResult, as our own client reads it."""
    if field(result, "is_error", "isError", default=False):
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        raise ToolFailed("\n".join(texts))
    structured = field(result, "structured_content", "structuredContent")
    if structured is not None:
        if isinstance(structured, dict) and list(structured) == ["result"]:
            return structured["result"]
        return structured
    texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
    values = []
    for t in texts:
        try:
            values.append(json.loads(t))
        except ValueError:
            values.append(t)
    return values[0] if len(values) == 1 else values


class ToolFailed(Exception):
    pass


def fail(message):
    print(f"mcp_sdk_client: {message}", file=sys.stderr)
    sys.exit(1)


async def exercise(session, protocol_version, server_info):
    listed = await session.list_tools()
    tools = {t.name: t for t in listed.tools}
    missing = EXPECTED_TOOLS - set(tools)
    if missing:
        fail(f"tools/list lacks {sorted(missing)}; got {sorted(tools)}")
    for t in tools.values():
        schema = field(t, "input_schema", "inputSchema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            fail(f"tool {t.name} has no object inputSchema: {schema!r}")

    calls = {}

    async def call(name, arguments):
        result = await session.call_tool(name, arguments)
        try:
            value = value_of(result)
        except ToolFailed as e:
            fail(f"{name}({arguments}) failed: {e}")
        calls[name] = {"arguments": arguments, "result": value}
        return value

    repos = await call("list_repositories", {})
    if not isinstance(repos, list) or not repos or "name" not in repos[0]:
        fail(f"list_repositories gave {repos!r}")
    repo = repos[0]["name"]
    docs = await call("list_repo_docs", {"repo": repo})
    files = [d["path"] for d in docs if isinstance(d, dict) and d.get("type", "file") == "file"]
    if not files:
        fail(f"list_repo_docs({repo}) gave {docs!r}")
    doc = await call("get_documentation", {"repo": repo, "path": files[0]})
    content = doc.get("content") if isinstance(doc, dict) else None
    if not isinstance(content, str):
        fail(f"get_documentation gave {doc!r}")
    words = [w for w in re.findall(r"[A-Za-z]{5,}", content)] or ["documentation"]
    hits = await call("search_documentation", {"query": words[0]})
    if not isinstance(hits, list):
        fail(f"search_documentation gave {hits!r}")

    # A path that escapes the repository is a tool error, not a protocol error.
    bad = await session.call_tool("get_documentation", {"repo": repo, "path": "../../etc/passwd"})
    if not field(bad, "is_error", "isError", default=False):
        fail(f"an escaping path was not refused: {bad!r}")
    calls["escaping_path_error"] = " ".join(c.text for c in bad.content if getattr(c, "type", "") == "text")

    return {
        "sdk": importlib.metadata.version("mcp"),
        "protocol_version": protocol_version,
        "server": server_info,
        "tools": sorted(tools),
        "calls": calls,
    }


def passed_env():
    return {k: v for k, v in os.environ.items() if k in PASSED_ENV}


def server_info_dict(info):
    if info is None:
        return None
    return {"name": info.name, "version": info.version}


async def run_v2(target):
    """mcp 2.x: the high-level Client (default mode 'auto' probes server/discover first)."""
    async with mcp.Client(target) as client:
        return await exercise(client, client.protocol_version, server_info_dict(client.server_info))


async def run_v1(kind, args):
    """mcp 1.x: transports plus ClientSession."""
    from mcp import ClientSession

    if kind == "http":
        from mcp.client.streamable_http import streamablehttp_client

        async with streamablehttp_client(args[0]) as (read, write, _):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                return await exercise(session, init.protocolVersion, server_info_dict(init.serverInfo))
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=args[0], args=args[1:], env=passed_env())
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            return await exercise(session, init.protocolVersion, server_info_dict(init.serverInfo))


async def main(argv):
    if len(argv) < 2 or argv[0] not in ("http", "stdio"):
        fail("usage: mcp_sdk_client.py http URL | stdio COMMAND [ARG...]")
    kind, args = argv[0], argv[1:]
    if hasattr(mcp, "Client"):
        if kind == "http":
            target = args[0]
        else:
            from mcp.client.stdio import StdioServerParameters

            target = StdioServerParameters(command=args[0], args=args[1:], env=passed_env())
        report = await run_v2(target)
    else:
        report = await run_v1(kind, args)
    print(json.dumps(report, ensure_ascii=False))


def leaves(e):
    """The innermost exceptions of a (possibly nested) exception group."""
    inner = getattr(e, "exceptions", None)
    if not inner:
        return [e]
    return [leaf for x in inner for leaf in leaves(x)]


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1:]), timeout=60))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - report anything, including ExceptionGroups
        fail("; ".join(f"{type(x).__name__}: {x}" for x in leaves(e)))
