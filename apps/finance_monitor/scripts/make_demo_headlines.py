"""Write the bundled demo headlines (original text written for this project).

Run from the app folder: ``python scripts/make_demo_headlines.py``. The phrases below
are this project's own writing about fictional companies; the script combines them
deterministically (seed 13) into ``src/finance_monitor/demo_data/headlines.jsonl`` with
fields ``text``, ``topic``, ``sentiment`` and ``tickers``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent.parent
OUT = HERE / "src/finance_monitor/demo_data/headlines.jsonl"
COMPANIES = yaml.safe_load((HERE / "src/finance_monitor/demo_data/companies.yaml").read_text())

# topic -> sentiment -> templates. {co} company name, {tk} cashtag, {p} percent, {n} number.
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "Earnings": {
        "positive": [
            "{co} beats estimates as quarterly profit climbs {p}%",
            "{tk} quarterly revenue tops forecasts, margins widen",
            "{co} raises full-year guidance after a record quarter",
            "Strong holiday sales lift {co} earnings {p}% above last year",
            "{tk} posts surprise profit and lifts outlook",
        ],
        "negative": [
            "{co} misses earnings estimates and cuts its outlook",
            "{tk} swings to a quarterly loss as costs balloon",
            "{co} profit falls {p}% on weak demand, guidance slashed",
            "{co} warns of a sharp drop in second-half earnings",
            "Disappointing results send {tk} shares sliding",
        ],
        "neutral": [
            "{co} to report third-quarter results on Thursday",
            "{tk} earnings call scheduled for next week",
            "{co} reports quarterly revenue in line with expectations",
            "Analysts expect {co} to post earnings of {n} cents a share",
            "{co} confirms the date of its annual results",
        ],
    },
    "M&A | Investments": {
        "positive": [
            "{co} agrees to buy a rival in a deal investors cheer",
            "{tk} jumps after a takeover offer at a {p}% premium",
            "{co} wins approval for its planned acquisition",
            "{co} lands a {n} million investment from a sovereign fund",
        ],
        "negative": [
            "{co} walks away from its merger after regulators object",
            "{tk} takeover talks collapse, shares tumble",
            "{co} writes down its last acquisition by {n} million",
            "Shareholders reject the {co} buyout as far too low",
        ],
        "neutral": [
            "{co} is exploring options for its logistics unit",
            "{tk} confirms early-stage talks about a possible deal",
            "{co} completes the sale of a minority stake",
            "{co} hires advisers to review a potential bid",
        ],
    },
    "Energy | Oil": {
        "positive": [
            "{co} output rises as new wells come online",
            "Oil prices climb, lifting {tk} and other producers",
            "{co} discovers a large offshore field",
            "Refining margins recover, boosting {co}",
        ],
        "negative": [
            "Oil slumps {p}% as inventories swell and demand fades",
            "{co} shuts a refinery after a fire, output hit",
            "Pipeline leak forces {co} to halt deliveries",
            "Crude prices crash as producers flood the market",
            "{tk} slides as gas prices fall to a three-year low",
        ],
        "neutral": [
            "Oil trades flat ahead of the weekly inventory report",
            "{co} schedules maintenance at its northern platform",
            "Producers meet this week to discuss output quotas",
            "{tk} publishes its monthly production figures",
        ],
    },
    "Fed | Central Banks": {
        "positive": [
            "Central bank signals rate cuts, stocks rally",
            "Inflation cools, easing pressure on the central bank",
            "Policymakers see a soft landing as growth holds up",
            "Central bank pauses hikes, bond markets cheer",
        ],
        "negative": [
            "Central bank hikes rates again and warns of more pain",
            "Hawkish minutes spook markets as rate fears return",
            "Policymakers warn inflation is proving stubborn",
            "Surprise rate increase rattles lenders and borrowers",
        ],
        "neutral": [
            "Central bank holds rates steady as expected",
            "Governor to speak at the annual policy forum on Friday",
            "Markets await the central bank's meeting minutes",
            "Policy committee publishes its quarterly projections",
        ],
    },
    "Legal | Regulation": {
        "positive": [
            "{co} wins its appeal and avoids a large fine",
            "Regulator clears {tk} of wrongdoing",
            "{co} settles a long patent dispute on favourable terms",
            "Court dismisses the class action against {co}",
        ],
        "negative": [
            "{co} fined {n} million over misleading disclosures",
            "Regulators open a fraud probe into {tk}",
            "{co} faces a lawsuit from investors over hidden losses",
            "Authorities raid {co} offices in a bribery investigation",
            "{tk} sued by customers after a data breach",
        ],
        "neutral": [
            "Regulator publishes draft rules for digital payments",
            "{co} responds to a routine information request",
            "Hearing in the {co} licence case set for March",
            "New disclosure rules take effect next quarter",
        ],
    },
    "Personnel Change": {
        "positive": [
            "{co} names a highly regarded turnaround expert as chief executive",
            "{tk} shares rise after it appoints a new finance chief",
            "{co} lures a star engineer to lead its research",
        ],
        "negative": [
            "{co} chief executive resigns abruptly amid an inquiry",
            "{tk} finance chief departs after accounting errors",
            "Top managers quit {co} as strategy falters",
            "{co} ousts its chairman after a boardroom clash",
        ],
        "neutral": [
            "{co} appoints a new head of investor relations",
            "{tk} announces board changes at its annual meeting",
            "{co} chief operating officer to retire next year",
            "{co} names a successor for its regional president",
        ],
    },
    "Company | Product News": {
        "positive": [
            "{co} launches a new product line to strong early demand",
            "{tk} wins a multi-year contract worth {n} million",
            "{co} opens a new plant, adding {n} jobs",
            "{co} new model sells out within days",
        ],
        "negative": [
            "{co} recalls {n} thousand units over a safety defect",
            "{tk} delays its flagship launch after production problems",
            "{co} loses its largest customer contract",
            "{co} plant shutdown disrupts supplies for weeks",
            "Outage at {co} leaves customers without service",
        ],
        "neutral": [
            "{co} unveils its product roadmap at an industry event",
            "{tk} updates the design of its mobile app",
            "{co} moves its headquarters to a new building",
            "{co} publishes its annual sustainability report",
        ],
    },
    "Currencies": {
        "positive": [
            "Dollar steadies as trade data beats forecasts",
            "Emerging market currencies rally on risk appetite",
            "Euro climbs to a two-month high on upbeat surveys",
        ],
        "negative": [
            "Yen plunges to a decade low, raising intervention fears",
            "Emerging market currencies sink as capital flees",
            "Pound tumbles after weak growth figures",
            "Currency crisis deepens as reserves run low",
        ],
        "neutral": [
            "Dollar little changed ahead of jobs data",
            "Currency traders await the policy decision",
            "Euro trades in a narrow range against the franc",
        ],
    },
    "Dividend": {
        "positive": [
            "{co} raises its dividend by {p}% and adds a buyback",
            "{tk} declares a special dividend after strong cash flow",
            "{co} lifts its payout for the tenth straight year",
        ],
        "negative": [
            "{co} suspends its dividend to preserve cash",
            "{tk} cuts its payout by half as profits shrink",
            "{co} scraps its buyback and trims the dividend",
        ],
        "neutral": [
            "{co} declares its regular quarterly dividend",
            "{tk} sets the record date for its dividend",
            "{co} keeps its dividend unchanged",
        ],
    },
    "Stock Movement": {
        "positive": [
            "{tk} shares surge {p}% to an all-time high",
            "{co} stock soars after an upgrade",
            "{tk} rallies for a fifth straight session",
        ],
        "negative": [
            "{tk} shares plunge {p}% after a downgrade",
            "{co} stock sinks to a five-year low",
            "{tk} tumbles as short sellers pile in",
            "{co} shares crash on heavy selling",
        ],
        "neutral": [
            "{tk} shares unchanged in early trading",
            "{co} stock trades sideways ahead of results",
            "{tk} to join a major index next month",
        ],
    },
}

PER_TEMPLATE = 4


def main() -> None:
    rng = random.Random(13)
    names = sorted(COMPANIES)
    rows = []
    seen = set()
    for topic, by_sentiment in TEMPLATES.items():
        for sentiment, templates in by_sentiment.items():
            for template in templates:
                for _ in range(PER_TEMPLATE if "{co}" in template or "{tk}" in template else 1):
                    name = rng.choice(names)
                    ticker = COMPANIES[name]
                    text = template.format(
                        co=name, tk=f"${ticker}", p=rng.randint(3, 40), n=rng.randint(12, 900)
                    )
                    if text in seen:
                        continue
                    seen.add(text)
                    tickers = [ticker] if ("{co}" in template or "{tk}" in template) else []
                    rows.append(
                        {"text": text, "topic": topic, "sentiment": sentiment, "tickers": tickers}
                    )
    rng.shuffle(rows)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} headlines to {OUT}")


if __name__ == "__main__":
    main()
