"""The one Markdown-subset renderer behind card.html and study.html."""

import base64

import pytest

from syncxr.report.markdown import inline, table, to_html


def test_inline_code_is_literal_and_emphasis_outside_it():
    assert inline("load `shards/*.parquet` with *pandas*") == "load <code>shards/*.parquet</code> with <i>pandas</i>"
    assert inline("the corpus is **simulated**") == "the corpus is <b>simulated</b>"
    assert inline("a < b & 2 * 3 = 6") == "a &lt; b &amp; 2 * 3 = 6"  # a lone star is text


def test_table_header_and_rows():
    md = table(["a", "b"], [[1, "x"], [2, "y"]])
    html = to_html(md, {}, "t", lambda alt, target: alt)
    assert "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>x</td></tr><tr><td>2</td><td>y</td></tr></table>" in html


def test_images_resolve_through_the_given_key_and_are_inlined():
    png = b"\x89PNG fake"
    md = "# Title\n\n![label frequencies](card_assets/labels.png)\n\n```\nraw *text* `here`\n```\n"
    html = to_html(md, {"labels": png}, "card", lambda alt, target: target.split("/")[-1][:-4])
    assert "<h1>Title</h1>" in html and "<title>card</title>" in html
    assert base64.b64encode(png).decode() in html and 'alt="label frequencies"' in html
    assert "<pre>raw *text* `here`</pre>" in html  # nothing inside a code block is interpreted


def test_a_missing_figure_is_a_key_error_not_a_silent_gap():
    with pytest.raises(KeyError):
        to_html("![x](a.png)", {}, "t", lambda alt, target: alt)
