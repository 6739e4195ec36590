from customer_service.pii import mask_pii


def test_card_numbers_are_masked_in_any_grouping() -> None:
    assert mask_pii("card 4111 1111 1111 1111 lost") == "card [CARD] lost"
    assert mask_pii("card 4111-1111-1111-1111") == "card [CARD]"
    assert mask_pii("4111111111111111") == "[CARD]"


def test_emails_and_phone_numbers_are_masked() -> None:
    assert mask_pii("write to jo.doe+bank@example.co.uk please") == "write to [EMAIL] please"
    assert mask_pii("call me on +44 20 7946 0958") == "call me on [PHONE]"
    assert mask_pii("my number is 07700900123") == "my number is [PHONE]"
    assert mask_pii("or (555) 123-4567") == "or [PHONE]"


def test_iban_is_masked() -> None:
    assert mask_pii("IBAN GB29 NWBK 6016 1331 9268 19 thanks") == "IBAN [IBAN] thanks"


def test_amounts_dates_and_short_numbers_are_kept() -> None:
    text = "I paid £250.00 on 12/03/2024, order 12345, 3 to 5 days"
    assert mask_pii(text) == text
