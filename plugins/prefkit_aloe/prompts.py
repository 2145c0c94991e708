"""Prompts of the ALOE roles: simulated user, persona extractor, responders, pairwise judge.

Written for prefkit (the reference's prompt text is not reused); what each prompt asks for
follows the method (spec §2.1):

* **simulated user**: plays the persona (the profile's facts give the topics, the personality
  the style), opens the chat, reveals only a little of its profile per message, talks to the
  bot as to a friend, stays in character and never says it is an AI;
* **extractor**: states which parts of the persona the transcript has revealed so far
  (direct evidence only, in the wording of the persona; ``None`` when nothing is evident);
* **persona-aware responder**: the conversation, each user turn carrying a hint with the
  persona inferred at that turn; **plain responder**: the same conversation without hints;
  both are asked for a short, human-like reply (at most 3 sentences);
* **judge**: sees the true persona, the user's current message and two replies, and names the
  one this user would prefer (``first`` / ``second``; asked in both orders by ``generate``).

Roles of the simulator's chat are flipped: the simulator is the ``assistant`` of its own chat
and the bot's replies reach it as ``user`` messages, so any chat template works.
"""

from __future__ import annotations

import re
from typing import Any

import prefkit

from .pools import Persona

MAX_SENTENCES = 3

# ============================================================================ simulated user
USER_SYSTEM = """\
You are role-playing a real person who is chatting with an AI chatbot. Stay in character for the whole \
conversation.

Who you are (your life, the facts you may talk about):
{profile}

Your personality (let it show in HOW you write, never name these traits):
{personality}

How to chat:
- Write in the first person as this person; the profile's pronouns say who you are.
- You start the conversation; afterwards you answer the chatbot's replies.
- Bring up things from your own life, but reveal only one or two facts about yourself per message: \
never sum up your profile, and let the chatbot discover you gradually.
- Talk to the chatbot the way you would talk to a friend: share, react, ask back. Do not ask it for \
advice or to do tasks for you.
- Keep every message short and natural (one to {n} sentences), like someone typing in a chat app.
- Never say or hint that you are an AI, a language model, a simulation or role-playing.
- Write only your message: no name label, no quotation marks, no stage directions."""

USER_OPENING = "(The chat is starting. Write your first message to the chatbot.)"
USER_NEXT = "(Write your next message, at most {n} sentences.)"


def user_turn_messages(persona: Persona, history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Chat messages asking the simulated user for its next message.

    ``history``: the realised conversation, ``[{"role": "user"|"assistant", "content": ...}]``
    (empty for the first message). The simulator is the ``assistant`` of this chat: its own
    past messages are ``assistant`` messages, the bot's replies ``user`` messages; the last bot
    reply carries a reminder of the length limit.
    """
    msgs: list[dict[str, str]] = [
        {"role": "system", "content": USER_SYSTEM.format(profile=persona.profile, personality=persona.personality,
                                                         n=MAX_SENTENCES)},
        {"role": "user", "content": USER_OPENING},
    ]
    for m in history:
        role = m.get("role")
        if role == "user":
            msgs.append({"role": "assistant", "content": str(m["content"])})
        elif role == "assistant":
            msgs.append({"role": "user", "content": str(m["content"])})
        else:
            raise prefkit.UsageError(f"history messages must be user or assistant, got {role!r}")
    if history:
        if msgs[-1]["role"] != "user":
            raise prefkit.UsageError("the history must end with an assistant (bot) message before the next user turn")
        msgs[-1] = {"role": "user", "content": msgs[-1]["content"] + "\n\n" + USER_NEXT.format(n=MAX_SENTENCES)}
    return msgs


_ACTION = re.compile(r"\*[^*\n]{0,200}\*")
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:user|me|human|person|a|you|message|my message|your message|response|"
                    r"answer|reply)(?:\*\*)?\s*[:：]\s*", re.I)
_BREAKS_CHARACTER = re.compile(
    r"\b(?:as an ai\b|an ai (?:language )?model|a language model|(?:i am|i'm) (?:just )?an? (?:ai|chatbot|"
    r"virtual assistant|assistant)\b|(?:i am|i'm) (?:just )?(?:role-?playing|pretending to be)|simulated user|"
    r"out of character\b|stay(?:ing)? in character)", re.I)
_QUOTES = "\"'“”‘’`"


def trim_unfinished(text: str) -> str:
    """Drop a trailing unfinished sentence (a reply cut by the token limit), if a finished one precedes it."""
    t = str(text or "").rstrip()
    if not t or t[-1] in ".!?\"')…":
        return t
    cut = max(t.rfind(c) for c in ".!?…")
    return t[:cut + 1] if cut > 0 else t


def clean_user_message(text: str) -> str:
    """The simulated user's message without stage directions, labels and wrapping quotes.

    Strips ``*action*`` text (as the reference does), a leading role label (``User:``,
    ``Me:`` ...), one pair of wrapping quotes, surrounding whitespace. **Raises**
    :class:`prefkit.Reject` when nothing usable is left or the message breaks character
    (mentions being an AI, a language model, role-play): inside a
    :func:`prefkit.run_dialogues` step that rejects the turn, which is asked afresh (new keys)
    and never committed. Never returns an empty string.
    """
    t = _ACTION.sub(" ", str(text or ""))
    t = t.strip()
    for _ in range(2):  # "User: "Hello"" -> Hello
        t = _LABEL.sub("", t).strip()
        if len(t) >= 2 and t[0] in _QUOTES and t[-1] in _QUOTES:
            t = t[1:-1].strip()
    t = re.sub(r"[ \t]+", " ", t)
    t = re.sub(r"\n{3,}", "\n\n", t).strip()
    if not t or not re.search(r"\w", t):
        raise prefkit.Reject("the simulated user's message is empty after cleaning")
    if _BREAKS_CHARACTER.search(t):
        raise prefkit.Reject("the simulated user broke character (mentions being an AI / role-play)")
    return t


# ============================================================================ extractor
EXTRACTOR_SYSTEM = """\
You read a chat between a person (A) and a chatbot (B). You also know the person's full description. \
Your job: state only what the person's own messages have revealed about them SO FAR.

Rules:
- Use direct evidence from A's messages only; do not guess and do not copy facts that were not revealed.
- Reuse the wording of the full description for every fact or trait you list.
- If the messages do not reveal any personality trait (or any profile fact) yet, write None for it.
- If A's gender is not evident yet, use He/She.

Answer in exactly two lines:
Profile: <revealed facts, or None>
Personality: <revealed traits, or None>"""

# two worked examples (written for prefkit): after one user turn, and after three
EXTRACTOR_SHOTS: list[tuple[str, str, str]] = [
    (
        "Profile: She is a 41-year-old nurse who keeps bees in her backyard and sings in a church choir. "
        "She has two daughters.\n"
        "Personality: She is talkative and warm. She is practical and dislikes small talk that goes nowhere.",
        "A: Ugh, long shift at the hospital today. Anyone else's feet ache just from looking at stairs?",
        "Profile: He/She works at a hospital (a nurse).\nPersonality: None",
    ),
    (
        "Profile: He is a 29-year-old sous-chef who rides a fixed-gear bike and collects vinyl records. "
        "He lives alone with a parrot.\n"
        "Personality: He is sarcastic and quick-witted. He is impatient with long explanations.",
        "A: Just finished a double shift in the kitchen, my knife hand is dead.\n"
        "B: That sounds exhausting! Do you get to cook what you like at home?\n"
        "A: At home? Cereal, obviously. Chefs never cook for themselves, everybody knows that.\n"
        "B: Ha, fair enough. What do you do to unwind?\n"
        "A: Put a record on and listen to my parrot heckle it. Best critic I know.",
        "Profile: He is a chef who works long shifts in a kitchen. He listens to records and has a parrot.\n"
        "Personality: He is sarcastic.",
    ),
]


def transcript(history: list[dict[str, Any]], user_message: str | None = None) -> str:
    """The conversation as ``A:`` (the person) / ``B:`` (the chatbot) lines."""
    lines = [f"{'A' if m['role'] == 'user' else 'B'}: {' '.join(str(m['content']).split())}" for m in history]
    if user_message is not None:
        lines.append(f"A: {' '.join(user_message.split())}")
    return "\n".join(lines)


# ============================================================================ answer prefixes
PREFILL_MODES = ("auto", "on", "off")


def check_prefill(flag: str, mode: str) -> None:
    """``--judge-prefill`` / ``--extractor-prefill`` take auto, on or off."""
    if mode not in PREFILL_MODES:
        raise prefkit.UsageError(f"{flag} must be auto, on or off (got {mode!r})")


def prefill_wanted(mode: str, backend: str | None) -> bool:
    """Whether a role's answer is prefilled: ``on``/``off``, or with ``auto`` where the role's backend
    continues a final assistant message (the core's ``continues_prefill``: the local ``hf`` backend).
    Small local models then answer in the asked format instead of echoing the prompt."""
    if mode != "auto":
        return mode == "on"
    return bool(backend) and bool(getattr(prefkit.get_backend(backend), "continues_prefill", False))


def restore_prefix(prefix: str, text: str | None) -> str:
    """A prefilled reply with its answer prefix put back, unless it already starts with it (a re-ask's
    answer is not prefilled; markdown emphasis and case are ignored in the check)."""
    text = text or ""
    head = re.escape(prefix.rstrip(":").strip())
    return text if re.match(rf"\s*[*\s]*{head}\s*[:：]", text, re.I) else prefix + text


#: the extractor's answer prefix where it is prefilled (``--extractor-prefill``)
EXTRACTOR_PREFIX = "Profile:"


def extractor_messages(persona: Persona, history: list[dict[str, Any]], user_message: str, *,
                       prefill: bool = False) -> list[dict[str, str]]:
    """Ask what the transcript (history + the new user message) has revealed of ``persona``.

    ``prefill``: end with the answer prefix ``Profile:`` (an assistant message the local backend
    continues), which keeps small local models in the two-line format."""
    msgs: list[dict[str, str]] = [{"role": "system", "content": EXTRACTOR_SYSTEM}]
    for full, chat, answer in EXTRACTOR_SHOTS:
        msgs.append({"role": "user", "content": f"Full description:\n{full}\n\nChat:\n{chat}"})
        msgs.append({"role": "assistant", "content": answer})
    msgs.append({"role": "user", "content": f"Full description:\n{persona.text()}\n\n"
                                            f"Chat:\n{transcript(history, user_message)}"})
    if prefill:
        msgs.append({"role": "assistant", "content": EXTRACTOR_PREFIX})
    return msgs


_PROFILE_RE = re.compile(r"(?is)\bprofile\s*[:：]\s*(.*?)(?=\n[\s*\-•]*personalit(?:y|ies)\s*[:：]|\Z)")
_PERSONALITY_RE = re.compile(r"(?is)\bpersonalit(?:y|ies)\s*[:：]\s*(.*)\Z")


def parse_inferred(text: str) -> dict[str, str] | None:
    """``{"profile": ..., "personality": ...}`` from the extractor's two lines, or None when not readable.

    Markdown bold and bullets around the markers are tolerated; an absent trait is ``"None"``. A
    reply with only one of the two markers (e.g. cut off by the token limit before the
    personality line) gives ``"None"`` for the other; a reply with neither is unreadable.
    """
    t = str(text or "").replace("**", "")
    m1, m2 = _PROFILE_RE.search(t), _PERSONALITY_RE.search(t)
    if not m1 and not m2:
        return None
    prof = " ".join(m1.group(1).split()).strip() if m1 else ""
    pers = " ".join(m2.group(1).split()).strip() if m2 else ""
    return {"profile": prof or "None", "personality": pers or "None"}


def inferred_spec(prefilled: bool = False):
    """The extractor's answer spec (re-asked while the two lines are missing); ``prefilled``: the
    reply continues ``Profile:``, which is put back before parsing."""
    def parse(text: str) -> dict[str, str] | None:
        return parse_inferred(restore_prefix(EXTRACTOR_PREFIX, text) if prefilled else text)

    return prefkit.AnswerSpec(parse=parse,
                              reask="I could not read that. Answer in exactly two lines: "
                                    "'Profile: ...' and 'Personality: ...' (None where nothing is revealed).",
                              placeholder={"profile": "None", "personality": "None"})


# ============================================================================ responders
BREVITY = f"(Reply briefly and naturally, as a person would in a chat: at most {MAX_SENTENCES} sentences.)"

HINT = """\
[Private note, do not mention it: from the conversation so far, this user seems to be: {profile} \
Their personality: {personality} Infer what they care about, how they like to talk and what kind of answer \
they would enjoy, and tailor your reply to them.]"""


def hint_text(inferred: dict[str, str]) -> str:
    prof = inferred.get("profile") or "None"
    pers = inferred.get("personality") or "None"
    prof = "nothing known yet." if prof.strip().lower().rstrip(".") == "none" else prof
    pers = "nothing known yet." if pers.strip().lower().rstrip(".") == "none" else pers
    return HINT.format(profile=prof, personality=pers)


def responder_messages(history: list[dict[str, Any]], user_message: str, *, hints: list[dict[str, str]] | None = None,
                       inferred: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The responder's chat: every user turn with the brevity request; with ``inferred`` (aware) also the hint.

    ``hints``: the persona inferred at each past user turn (aware responder: each past user
    turn carries the hint of its own turn, as in the reference); None for the plain responder.
    """
    msgs: list[dict[str, str]] = []
    k = 0
    for m in history:
        if m["role"] == "user":
            content = str(m["content"]) + "\n\n" + BREVITY
            if hints is not None and k < len(hints) and hints[k]:
                content += "\n\n" + hint_text(hints[k])
            k += 1
            msgs.append({"role": "user", "content": content})
        else:
            msgs.append({"role": "assistant", "content": str(m["content"])})
    last = user_message + "\n\n" + BREVITY
    if inferred is not None:
        last += "\n\n" + hint_text(inferred)
    msgs.append({"role": "user", "content": last})
    return msgs


# ============================================================================ judge
JUDGE_LABELS = ("first", "second")
JUDGE_SYSTEM = """\
You judge which of two chatbot replies a particular person would prefer. You know who the person really \
is. Judge by: (1) does the reply's style suit the person's personality, (2) does its content connect to \
the person's life and interests, (3) is it human-like, engaging and concise. Answer with one word: \
first or second."""


def judge_messages(persona: Persona, user_message: str, first: str, second: str) -> list[dict[str, str]]:
    """Ask which reply (``first`` or ``second``) the true ``persona`` would prefer to its ``user_message``."""
    body = (f"The person:\n{persona.text()}\n\n"
            f"Their message to the chatbot:\n{user_message}\n\n"
            f"First reply:\n{first}\n\n"
            f"Second reply:\n{second}\n\n"
            "Which reply would this person prefer? Answer with one word: first or second.")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": body}]


def judge_spec():
    return prefkit.Choice(list(JUDGE_LABELS), reask="Answer with exactly one word: first or second.")


# ============================================================================ pool growth
GROW_PROMPT = {
    "profile": """\
Here are {k} descriptions of ordinary people, one per line:

{examples}

Write {n} new descriptions in the same style, one per line. Each describes a different, realistic person \
with 8 to 10 objective, everyday facts that could come up in a casual chat (age, job, hobbies, family, pets, \
education, a fun fact). Describe no personality traits and no details of their work. Start each with He or \
She. Make them diverse and unlike the examples and each other. Write plain text: no numbering, no bullets, \
no blank lines, nothing else.""",
    "personality": """\
Here are {k} descriptions of people's personalities, one per line:

{examples}

Write {n} new personality descriptions in the same style, one per line. Each lists 8 to 10 personality \
traits of one person, each trait with a short explanation of how it shows. Describe only traits: no \
occupation, age, hobbies or other facts. Start each with He or She. Make them diverse and unlike the \
examples and each other. Write plain text: no numbering, no bullets, no blank lines, nothing else.""",
}


def grow_messages(kind: str, examples: list[str], n: int) -> list[dict[str, str]]:
    """Ask for ``n`` new pool items of ``kind`` from ``examples``, one item per line."""
    if kind not in GROW_PROMPT:
        raise prefkit.UsageError(f"unknown pool kind {kind!r}")
    return [{"role": "user", "content": GROW_PROMPT[kind].format(k=len(examples), n=n, examples="\n".join(examples))}]


_ENUM = re.compile(r"^\s*(?:\d+\s*[.):-]|[-*•]|#+)\s*")


_NEW_PROFILE = re.compile(r"(?<=[.!?])\s+(?=(?:He|She|They) (?:is|are) an? \d{1,3}-year-old\b)")


def split_items(text: str, kind: str = "personality") -> list[str]:
    """The candidate items of a growth answer: one per non-empty line, numbering/bullets/quotes removed.

    (The reference asks for one item per line but splits on blank lines; prefkit splits on lines.)
    For profiles, a line holding several run-together profiles (small models do this) is also
    split where a sentence starts a new person ("He is a 28-year-old ...").
    """
    lines = str(text or "").splitlines()
    if kind == "profile":
        lines = [part for line in lines for part in _NEW_PROFILE.split(line)]
    out = []
    for line in lines:
        s = _ENUM.sub("", line.strip()).strip()
        if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
            s = s[1:-1].strip()
        if s:
            out.append(s)
    return out
