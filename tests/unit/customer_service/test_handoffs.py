from customer_service.handoffs import explain_handoff


def test_the_why_line_names_the_reason_and_the_evidence() -> None:
    turns = [
        {"text": "hi", "intent": "greeting", "confidence": 0.9, "answer": "template"},
        {"text": "zzz", "intent": "card_arrival", "confidence": 0.21, "answer": "fallback"},
        {"text": "??", "intent": "card_arrival", "confidence": 0.31, "answer": "handoff"},
    ]
    evidence = {"reason": "repeated_low_confidence", "turns": turns}
    assert explain_handoff("repeated_low_confidence", evidence) == (
        "The bot could not answer confidently 2 times in a row (last intent card_arrival at 31%)"
    )
    asked = {"turns": [{"text": "a person please", "intent": "talk_to_human", "confidence": 0.97}]}
    assert explain_handoff("customer_asked", asked) == (
        "The customer asked for a person (intent talk_to_human at 97%)"
    )
    assert (
        explain_handoff("customer_button", None)
        == "The customer pressed \u201ctalk to a human\u201d"
    )
    assert explain_handoff("something_new", None) == "Handed over (something_new)"
    assert explain_handoff(None, None) is None
