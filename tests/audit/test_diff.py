"""Before/after diffs: added, removed, changed and kept leaves, nested paths."""

from portal.audit.diff import diff, summary


def kinds(before, after):
    return [(c.path, c.kind) for c in diff(before, after)]


def test_nested_objects_and_lists_are_compared_leaf_by_leaf():
    before = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": {"deep": True}}
    after = {"a": 2, "b": {"c": [1, 2, 3], "d": "x"}, "new": [{"k": "v"}]}
    assert kinds(before, after) == [
        ("a", "changed"),
        ("b.c[0]", "unchanged"),
        ("b.c[1]", "unchanged"),
        ("b.c[2]", "added"),
        ("b.d", "unchanged"),
        ("gone.deep", "removed"),
        ("new[0].k", "added"),
    ]


def test_a_missing_side_counts_as_empty():
    assert kinds(None, {"x": 1}) == [("x", "added")]
    assert kinds({"x": 1}, None) == [("x", "removed")]


def test_a_type_change_is_a_change_and_texts_are_json():
    (change,) = diff({"v": "1"}, {"v": 1})
    assert (change.kind, change.old_text, change.new_text) == ("changed", '"1"', "1")


def test_scalars_at_the_top_level():
    assert kinds("a", "b") == [("(value)", "changed")]


def test_summary_counts_each_kind():
    counts = summary(diff({"a": 1, "b": 2}, {"a": 1, "c": 3}))
    assert counts == {"added": 1, "removed": 1, "changed": 0, "unchanged": 1}
