"""The tolerant parsers on a table of real-looking judge outputs, garbage included."""

import pytest

from prefkit.judging.parsing import parse_pairwise, parse_score, split_feedback

PAIRWISE = [
    # Prometheus-2 style
    ("Feedback: Response A is concise, but Response B covers the persona's wish for examples. [RESULT] B", "B"),
    ("[RESULT] A", "A"),
    ("Feedback: Both are safe. Response B is more tailored.\n[RESULT] B\n", "B"),
    ("[RESULT]: Response B", "B"),
    ("[RESULT] **B**", "B"),
    ("[RESULT] 'A'", "A"),
    ("[RESULT] (A)", "A"),
    # other labelled forms
    ("Result: B", "B"),
    ("**Verdict:** Response A", "A"),
    ("Winner: Response B", "B"),
    ("The better response is: A", "A"),
    ("Both responses address safety. Result - A", "A"),
    ("After weighing both, my final answer is B", "B"),
    ("Final verdict: [[B]]", "B"),
    ("[[A]]", "A"),
    # sentences
    ("Response A is better", "A"),
    ("Both are fine, but Response B is clearly better for this persona.", "B"),
    ("Response B is worse than Response A.", "A"),
    ("Response A is more personalized to the user.", "A"),
    ("I prefer Response A.", "A"),
    ("After careful thought I would choose B.", "B"),
    # bare answers
    ("B", "B"),
    ("(A)", "A"),
    ("Response B.", "B"),
    # ties (allowed by default in the parser; the judges decide)
    ("[RESULT] tie", "tie"),
    ("It's a tie.", "tie"),
    ("Final verdict: [[C]]", "tie"),
    # garbage and ambiguity: never a side
    ("", None),
    ("   ", None),
    ("I cannot decide.", None),
    ("Apples and bananas are both fruit.", None),
    ("A person should Be careful", None),
    ("Because of B12 vitamin levels...", None),
    ("Response A is better in tone, but Response B is better in accuracy.", None),
    ("[RESULT] (Either \"A\" or \"B\")", None),
    ("Feedback: (write a feedback for criteria) [RESULT] (Either \"A\" or \"B\")", None),
    ("[RESULT] A or B", None),
    ("[RESULT] 5", None),
    # the instructions echoed back (a model copying the prompt): two different [RESULT] verdicts
    ('end with "[RESULT] A" if Response A is better, or "[RESULT] B" if Response B is better.', None),
    ("Feedback: ... [RESULT] A\n\n###Instruction: blah [RESULT] B", None),
]


@pytest.mark.parametrize("text,expected", PAIRWISE)
def test_parse_pairwise_table(text, expected):
    assert parse_pairwise(text) == expected


def test_tie_is_unparseable_when_ties_are_not_allowed():
    assert parse_pairwise("[RESULT] tie", allow_tie=False) is None
    assert parse_pairwise("It's a tie.", allow_tie=False) is None
    assert parse_pairwise("[RESULT] B", allow_tie=False) == "B"


SCORES = [
    ("Feedback: The response is helpful. [RESULT] 4", 4),
    ("[RESULT] 4", 4),
    ("[RESULT] (4)", 4),
    ("[RESULT]: 4", 4),
    ("[RESULT] 4/5", 4),
    ("[RESULT] 5\n", 5),
    ("Feedback: 2 of the 3 points are covered. [RESULT] 3", 3),
    ("Score: 4", 4),
    ("**Score:** 3", 3),
    ("Overall score: 5.", 5),
    ("The response deserves a score of 3", 3),
    ("Rating: [[4]]", 4),
    ("4/5", 4),
    ("4 out of 5", 4),
    ("Clarity 4/5. Final score: 2", 2),
    ("I'd give it a 4.", 4),
    ("I rate this response a 2.", 2),
    ("4", 4),
    # garbage, out of range, other scales, ambiguity
    ("garbage", None),
    ("", None),
    ("[RESULT] 7", None),
    ("0", None),
    ("[RESULT] 3.5", None),
    ("Score: 4/10", None),
    ("The response is 8/10", None),
    ("Clarity 4/5, accuracy 2/5", None),
    ("[RESULT] (an integer number between 1 and 5)", None),
    ('end with "[RESULT] N", where N is an integer from 1 to 5.', None),
    ("The response mentions 3 tips in 2 paragraphs.", None),
    ("[RESULT] 2 ... [RESULT] 5", None),
]


@pytest.mark.parametrize("text,expected", SCORES)
def test_parse_score_table(text, expected):
    assert parse_score(text) == expected


def test_parse_score_other_scales():
    assert parse_score("[RESULT] 9", low=1, high=10) == 9
    assert parse_score("9/10", low=1, high=10) == 9
    assert parse_score("4/5", low=1, high=10) is None
    assert parse_score("[RESULT] 0", low=0, high=3) == 0


def test_split_feedback():
    assert split_feedback("Feedback: The response is good. [RESULT] 4") == "The response is good."
    assert split_feedback("no marker at all") == "no marker at all"
    assert split_feedback(None) == ""
