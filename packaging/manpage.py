#!/usr/bin/env python3
"""Writes the wsconn(3) man page, in roff, from the comments of the header.

Usage: manpage.py include/wsconn.h > wsconn.3

The header is generated from the Rust sources, so every function's page text
is its Rust doc comment: the man page cannot drift from the API.  cbindgen
separates items with blank lines; each item is a doc comment followed by C.
"""

import re
import sys

# Function groups, in page order: (section title, name prefix); the empty
# prefix takes the rest.
GROUPS = [
    ("Version and errors", ("wsconn_version", "wsconn_strerror")),
    ("Reactors", ("wsconn_reactor_",)),
    ("Acceptors", ("wsconn_acceptor_",)),
    ("Configuration", ("wsconn_config_",)),
    ("Sessions (the sans-IO API)", ("wsconn_session_",)),
    ("Connections (the reactor API)", ("",)),
]


def roff(text):
    """Escapes text for roff and turns `code` into bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    return text


def line(text):
    """A text line that roff will not take for a request."""
    return "\\&" + text if text.startswith((".", "'")) else text


def paragraphs(doc):
    """roff for a doc comment's lines: paragraphs, `- ` bullets, `# Heading`s."""
    out, para = [], []

    def flush():
        if para:
            out.append(".PP" if not para[0].startswith("- ") else ".IP \\(bu 2")
            first = para[0][2:] if para[0].startswith("- ") else para[0]
            out.extend(line(roff(t)) for t in [first] + para[1:])
            para.clear()

    for text in doc:
        text = text.strip()
        if not text:
            flush()
        elif text.startswith("# "):
            flush()
            out.append(".PP")
            out.append("\\fI" + roff(text[2:]) + ":\\fR")
        elif text.startswith("- "):
            flush()
            para.append(text)
        else:
            para.append(text)
    flush()
    return out


def items(header):
    """(doc lines, C lines) for each blank-line-separated item of the header."""
    for chunk in re.split(r"\n\s*\n", header):
        lines = chunk.strip("\n").split("\n")
        doc = []
        if lines and lines[0].startswith("/**"):
            end = next(i for i, l in enumerate(lines) if l.strip() == "*/")
            doc = [re.sub(r"^\s*\* ?", "", l) for l in lines[1:end]]
            lines = lines[end + 1 :]
        yield doc, lines


def declaration(lines):
    """A declaration on one line, its whitespace folded."""
    return re.sub(r"\s+", " ", " ".join(lines)).replace("( ", "(").replace(" )", ")")


def enum_members(lines):
    """(name, value, doc) for each member of an enum block."""
    members, doc = [], []
    for text in lines:
        text = text.strip()
        if text.startswith("/**"):
            doc = []
        elif text.startswith("*/"):
            pass
        elif text.startswith("*"):
            doc.append(re.sub(r"^\* ?", "", text))
        else:
            m = re.match(r"(\w+) = (-?\d+),", text)
            if m:
                members.append((m.group(1), m.group(2), doc))
                doc = []
    return members


def prototype(code, doc):
    """C lines in bold, unfilled, then their doc indented."""
    bold = ["\\fB" + line(roff(c)) + "\\fR" for c in code]
    return [".PP", ".nf"] + bold + [".fi", ".RS"] + paragraphs(doc) + [".RE"]


def main(path):
    header = open(path, encoding="utf-8").read()
    intro = re.match(r"/\*\n(.*?)\*/", header, re.S).group(1)
    intro = [re.sub(r"^ \* ?", "", l) for l in intro.split("\n")]
    intro = [l for l in intro if "GENERATED" not in l and "do not edit" not in l]
    version = re.search(r'#define WSCONN_VERSION_STRING "([^"]+)"', header).group(1)

    functions = {title: [] for title, _ in GROUPS}
    types, callbacks, macros, results = [], [], [], []
    for doc, lines in items(header):
        if not lines:
            continue
        first = lines[0]
        if first.startswith("#define WSCONN_"):
            macros.append((doc, [l for l in lines if l.startswith("#define")]))
        elif first.startswith("enum "):
            name = first.split()[1]
            (results if name == "wsconn_result" else types).append((name, doc, enum_members(lines)))
        elif first.startswith("typedef") and "(*" in first:
            callbacks.append(([declaration(lines)], doc))
        elif first.startswith("typedef struct"):
            types.append((lines, doc, None))
        elif "(" in first and lines[-1].endswith(");"):
            decl = declaration(lines)
            name = re.search(r"(wsconn_\w+)\(", decl).group(1)
            title = next(t for t, prefixes in GROUPS if name.startswith(prefixes))
            functions[title].append(([decl], doc))

    out = [
        '.TH WSCONN 3 "" "wsconn %s" "wsconn manual"' % version,
        ".nh",
        ".SH NAME",
        "wsconn \\- WebSocket (RFC 6455) library for C: reactor and sans\\-IO APIs",
        ".SH SYNOPSIS",
        ".nf",
        ".B #include <wsconn.h>",
        ".PP",
        "Shared:  cc prog.c $(pkg\\-config \\-\\-cflags \\-\\-libs wsconn)",
        "Static:  cc prog.c $(pkg\\-config \\-\\-cflags wsconn) \\-Wl,\\-Bstatic $(pkg\\-config \\-\\-static \\-\\-libs wsconn)",
        "CMake:   find_package(wsconn CONFIG REQUIRED), then link wsconn::wsconn or wsconn::wsconn_static",
        ".fi",
        ".SH DESCRIPTION",
    ]
    out += paragraphs(intro)
    out.append(".SH FUNCTIONS")
    for title, _ in GROUPS:
        out.append('.SS "%s"' % title)
        for decl, doc in functions[title]:
            out += prototype(decl, doc)
    out.append('.SH "RETURN VALUES"')
    for name, doc, members in results:
        out += paragraphs(doc)
        for member, value, member_doc in members:
            out += [".TP", "\\fB%s\\fR (%s)" % (member, value)] + paragraphs(member_doc)[1:]
    out.append(".SH TYPES")
    for name, doc, members in types:
        if members is None:
            out += prototype(name, doc)
            continue
        out += prototype(["enum " + name], doc)
        out.append(".RS")
        for member, value, member_doc in members:
            out += [".TP", "\\fB%s\\fR (%s)" % (member, value)] + paragraphs(member_doc)[1:]
        out.append(".RE")
    out.append(".SH CALLBACKS")
    for decl, doc in callbacks:
        out += prototype(decl, doc)
    out.append(".SH MACROS")
    for doc, defines in macros:
        out += prototype(defines, doc)
    out += [
        '.SH "SEE ALSO"',
        "The C examples installed with the library under share/doc/wsconn/examples;",
        "the README and CHANGELOG.md beside them.",
    ]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: manpage.py include/wsconn.h > wsconn.3")
    main(sys.argv[1])
