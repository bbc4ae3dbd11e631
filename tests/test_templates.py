from crmkit import App


def plugin(folder: str) -> str:
    return (
        "from pathlib import Path\nimport crmkit\n\n"
        "@crmkit.hookimpl\ndef crmkit_template_dirs():\n"
        f"    return [Path(__file__).parent / {folder!r}]\n\n"
        "@crmkit.hookimpl\ndef crmkit_jinja_filters():\n"
        "    return {'initials': lambda n: ''.join(p[0] for p in n.split())}\n")


def test_workspace_templates_override_plugin_templates_by_name(make_workspace):
    root = make_workspace({
        "plugins/shipping.py": plugin("shipped"),
        "plugins/shipped/hello.txt.j2": "shipped: {{ name | initials }}",
        "plugins/shipped/other.txt.j2": "other",
        "templates/hello.txt.j2": "workspace: {{ name | initials }}",
    })
    env = App(root).templates
    assert env.get_template("hello.txt.j2").render(name="Anna Müller") == "workspace: AM"
    assert env.get_template("other.txt.j2").render() == "other"


def test_html_templates_escape_customer_data(make_workspace):
    root = make_workspace({"templates/card.html.j2": "<p>{{ name }}</p>",
                           "templates/card.md.j2": "{{ name }}"})
    env = App(root).templates
    evil = "<script>alert(1)</script>"
    assert env.get_template("card.html.j2").render(name=evil) == \
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert env.get_template("card.md.j2").render(name=evil) == evil
