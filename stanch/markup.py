"""Alert text is data, never markup: one pure function per sink syntax.

Everything an alert carries (summary, description, labels, names) comes from whoever can reach the intake
or write an alerting rule, and Stanch stores it raw (the structured fields of every model stay exactly as
received, so anything that digests or signs them sees the original). It is escaped only at the sink, in
that sink's own syntax, by the code that renders it:

- `markdown`        the decision brief (`Brief.as_markdown` → `workflow.set_current_details`), CommonMark/GFM
- `temporal_ui_text` the intake's static summary/details (the Temporal UI renders them as Markdown too)
- `slack_mrkdwn`    Slack's `&`, `<`, `>` — what makes `<!channel>`, `<@U123>` and `<http://x|y>` work
- `discord_markdown` Discord's Markdown and its `@everyone`/`@here`/`<@id>` mentions
- `telegram_html`   Telegram's HTML parse mode
- `email_html`      the HTML part of an email
- `plain`           the CLI, an email's text part, Slack `plain_text` — no syntax, only visible characters

Stanch's own formatting around the alert text (titles, bold labels) is written by the renderer and never
passes through these functions: only the alert-derived parts are escaped.

Every function also makes control characters visible (as `\\x1b`, `\\u202e`, …) instead of passing them on:
a terminal escape, a right-to-left override or a zero-width space can rewrite what a human reads as surely
as markup can. Newline and tab are kept where the sink shows them as such. A `limit` bounds the *escaped*
result and never cuts inside an escape (an entity, a backslash pair), which would leave broken markup.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterable

ELLIPSIS = "…"
# A line longer than this is cut where a sink shows text as lines (CLI, email): a 1 MB single-line
# description must not scroll a terminal for a minute nor break a mail reader.
MAX_LINE = 1_000

# Besides C0/C1 controls: format characters (Unicode category Cf — bidi embeddings, overrides and isolates,
# the "Trojan Source" characters; directional marks; zero-width characters; tag characters) and the line
# and paragraph separators. Each changes how the text around it reads without showing itself. (A
# zero-width joiner inside an emoji sequence is written out too: legibility loses to honesty here.)
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def _visible(char: str) -> str | None:
    """The visible stand-in for a control or invisible character, or None for an ordinary one."""
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return None


def visible_controls(text: str, keep: str = "\n\t") -> str:
    """Control and invisible characters written out (`\\x07`, `\\u202e`); the ones in `keep` kept as they are.

    CR and CRLF become LF first when LF is kept: a Windows line ending is a line ending, not an attack.
    """
    if "\n" in keep:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for char in text:
        stand_in = None if char in keep else _visible(char)
        out.append(char if stand_in is None else stand_in)
    return "".join(out)


def one_line(text: str) -> str:
    """Every run of whitespace (newlines included) as one space: for a field shown inline."""
    return " ".join(visible_controls(text, keep="\n\t\r").split())


def bound_lines(text: str, max_line: int = MAX_LINE) -> str:
    return "\n".join(
        line if len(line) <= max_line else line[: max_line - 1] + ELLIPSIS for line in text.split("\n")
    )


def _escaped(pieces: Iterable[str], limit: int | None) -> str:
    """Join escaped pieces (one per source character), stopping before `limit` with an ellipsis."""
    if limit is None:
        return "".join(pieces)
    pieces = list(pieces)
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    out: list[str] = []
    size = len(ELLIPSIS)
    for piece in pieces:
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + ELLIPSIS


def _map(text: str, escape: Callable[[str], str], limit: int | None) -> str:
    return _escaped((escape(char) for char in text), limit)


# ---- plain text --------------------------------------------------------------------------------------


def plain(text: str, *, limit: int | None = None, max_line: int = MAX_LINE) -> str:
    """For sinks without syntax (the CLI, an email's text part): visible controls, bounded lines."""
    return _map(bound_lines(visible_controls(text), max_line), str, limit)


# ---- Markdown (CommonMark / GFM): the brief and the Temporal UI -----------------------------------------

# A backslash makes an ASCII punctuation character literal (CommonMark), so each character Markdown or its
# extensions could read as markup is escaped: emphasis, links and images, headings, lists, tables, code,
# raw HTML (`\<img>`), entities (`\&lt;`), autolinks (`http\:`, `www\.`), strike-through, `$math$`,
# `^footnotes`. Not escaped: the punctuation that opens nothing (`"`, `'`, `%`, `,`, `/`, `;`, `=`, `?`,
# `@`). That is not only tidier: the Temporal UI's renderer (2.54.1, seen in Chromium) honours a
# backslash only before the characters it gives a meaning to and shows it before the others (`\/`), and
# it shows a named entity (`&lt;`) as typed — so backslashes, here, are the one form that renders right
# both there and in any CommonMark renderer (tests/stanch/test_markup.py checks both).
_MARKDOWN_ESCAPED = set("\\`*_{}[]()#+-.!|~<>&:^$")


def _markdown_char(char: str) -> str:
    return "\\" + char if char in _MARKDOWN_ESCAPED else char


def markdown(text: str, *, limit: int | None = None) -> str:
    """Alert text as literal inline Markdown: on one line (a newline would let it open a heading, a list,
    a table or a code block of its own), every markup character escaped."""
    return _map(one_line(text), _markdown_char, limit)


def temporal_ui_text(text: str, max_bytes: int) -> str:
    """The intake's `static_summary` / `static_details`: literal Markdown on one line whose JSON encoding
    (what Temporal measures against its 400-byte summary / 20,000-byte details limits) fits `max_bytes`.

    Usage in the intake: `static_summary=temporal_ui_text(f"... {incident.summary}", SUMMARY_BYTES)`.
    Stanch's own words in these strings carry no markup, so the whole string is escaped.
    """
    pieces = [_markdown_char(char) for char in one_line(text)]

    def encoded(candidate: str) -> int:
        return len(json.dumps(candidate, ensure_ascii=False).encode())

    whole = "".join(pieces)
    if encoded(whole) <= max_bytes:
        return whole
    # Bisect on whole pieces, so an entity or a backslash pair is never cut in two.
    low, high = 0, len(pieces)
    while low < high:
        middle = (low + high + 1) // 2
        if encoded("".join(pieces[:middle]) + ELLIPSIS) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return "".join(pieces[:low]) + ELLIPSIS


# ---- Slack mrkdwn ---------------------------------------------------------------------------------------

_SLACK = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def slack_mrkdwn(text: str, *, limit: int | None = None) -> str:
    """The three characters Slack asks senders to escape. Without `<` and `>` there is no `<!channel>`,
    `<!here>`, `<@U123>`, `<#C123>` nor `<http://x|label>`: Slack shows them as typed and pings nobody.
    Slack has no escape for `*bold*` or `_italic_`: where that matters, send `plain_text` instead."""
    return _map(visible_controls(text), lambda char: _SLACK.get(char, char), limit)


# ---- Discord --------------------------------------------------------------------------------------------

# Discord's parser drops a backslash before any non-alphanumeric character, so escaping more than needed
# is harmless; these are the characters its Markdown uses: emphasis, strike, spoilers, code, quotes,
# headings and subtext (`#`, `-#`), lists, masked links, mentions and channel links (`<@id>`, `<#id>`),
# and timestamps (`<t:…>`).
_DISCORD_ESCAPED = set("\\*_~`|>#-+.[]()<@:!=")


def discord_markdown(text: str, *, limit: int | None = None) -> str:
    """Alert text as literal Discord content. `@everyone`, `@here` and `<@id>` come out as `\\@everyone`,
    `\\<\\@id>`: shown as typed, never a mention — and the notifier still sends
    `allowed_mentions: {"parse": []}`, so even a missed case pings nobody."""
    return _map(visible_controls(text), lambda char: "\\" + char if char in _DISCORD_ESCAPED else char, limit)


# ---- Telegram (parse_mode HTML) -------------------------------------------------------------------------

_TELEGRAM = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def telegram_html(text: str, *, limit: int | None = None) -> str:
    """Telegram's HTML parse mode knows only `&lt;`, `&gt;`, `&amp;` (and `&quot;`): those three are all
    it needs. The Bot API counts its 4096-character limit after entities are parsed; `limit` here counts
    the escaped text, which is never shorter, so it is a safe bound."""
    return _map(visible_controls(text), lambda char: _TELEGRAM.get(char, char), limit)


# ---- email ----------------------------------------------------------------------------------------------


def email_html(text: str) -> str:
    """The HTML part of an email: escaped (quotes too: it may land in an attribute of a template), with
    newlines as `<br>` so the text keeps its lines."""
    escaped = html.escape(bound_lines(visible_controls(text)), quote=True)
    return re.sub(r"\n", "<br>\n", escaped)


def header(text: str, limit: int = 200) -> str:
    """An email header value (Subject): one line — a newline there is refused by the email library, or
    worse, read as a new header by a lax one."""
    return _map(one_line(text), str, limit)
