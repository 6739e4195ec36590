"""Generate the bundled demo data: "Lantern Lane Academy", a fictional online course shop.

All subject descriptions below were written for this project (license-clean). The output
is committed under ``src/recommender/demo_data``; rerun with
``python apps/recommender/scripts/make_demo_data.py`` to regenerate it (seeded, so the
files come out identical).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "recommender" / "demo_data"
SEED = 13
START = 1_767_225_600  # 2026-01-01 UTC
DAY = 86_400

SUBJECTS: dict[str, list[tuple[str, str]]] = {
    "programming": [
        ("Python Basics", "write small Python programs with variables, loops and functions"),
        ("Testing Python Code", "write unit tests with pytest and keep a codebase safe to change"),
        ("Web APIs with FastAPI", "build a JSON web service with typed request models"),
        ("Rust for Pythonistas", "learn ownership, borrowing and fast compiled programs in Rust"),
        ("Git Without Fear", "branch, merge and undo mistakes with version control"),
        ("SQL for Developers", "query relational databases with joins, indexes and transactions"),
        ("JavaScript in the Browser", "make web pages interactive with the DOM and events"),
        ("Concurrency Explained", "threads, async code and queues without race conditions"),
        ("Command Line Craft", "automate chores with the shell, pipes and small scripts"),
        ("Clean Code Refactoring", "turn tangled functions into small readable modules"),
    ],
    "data-science": [
        ("Statistics Refresher", "means, variance, confidence intervals and hypothesis tests"),
        ("Pandas Data Wrangling", "clean, reshape and join tabular data frames"),
        ("Machine Learning Foundations", "train and evaluate regression and classification models"),
        ("Data Visualisation", "tell a clear story with charts, colour and annotation"),
        ("Neural Networks from Scratch", "gradients, layers and training loops for deep learning"),
        ("Recommender Systems", "collaborative filtering, embeddings and ranking metrics"),
        ("Natural Language Processing", "tokenise text, embed sentences and classify documents"),
        ("Time Series Forecasting", "trend, seasonality and forecasts of sales or traffic"),
        ("A/B Testing in Practice", "design experiments and read their results honestly"),
        ("Feature Engineering", "turn raw columns into signals a model can learn from"),
    ],
    "baking": [
        ("Sourdough Bread", "raise a wild yeast starter and bake crusty loaves"),
        ("French Pastry", "laminate butter into croissant and puff pastry dough"),
        ("Layer Cakes", "bake even sponges, whip buttercream and stack tall cakes"),
        ("Gluten-Free Baking", "flours, binders and bakes that work without wheat"),
        ("Pies and Tarts", "flaky shortcrust, blind baking and fruit fillings"),
        ("Cookies and Biscuits", "chewy, crisp and decorated cookies for every season"),
        ("Enriched Doughs", "brioche, cinnamon buns and sweet festive breads"),
        ("Macarons", "meringue, almond flour and the perfect smooth shell"),
        ("Pizza at Home", "stretch dough and bake blistered pizza in a home oven"),
        ("Chocolate Work", "temper chocolate and make glossy bonbons and bars"),
    ],
    "cooking": [
        ("Knife Skills", "dice, julienne and sharpen a chef's knife safely"),
        ("Weeknight Vegetarian", "quick meat-free dinners full of vegetables and beans"),
        ("Indian Home Cooking", "spices, dals and curries from regional kitchens"),
        ("Fresh Pasta", "roll egg pasta by hand and pair it with simple sauces"),
        ("Fermentation Basics", "kimchi, sauerkraut and pickles in glass jars"),
        ("Japanese Comfort Food", "ramen broth, rice bowls and miso soups"),
        ("Grilling and Barbecue", "cook over charcoal and smoke meat low and slow"),
        ("Soups and Stocks", "build deep flavour from bones and vegetables"),
        ("Meal Prep for the Week", "plan, batch cook and store healthy lunches"),
        ("Sauces of the World", "emulsions, reductions and pan sauces for any dish"),
    ],
    "gardening": [
        ("Vegetable Garden Planning", "plan beds, rotate crops and grow your own food"),
        ("Composting", "turn kitchen scraps into rich soil for your plants"),
        ("Houseplant Care", "light, watering and repotting for indoor plants"),
        ("Pruning Fruit Trees", "shape apple and pear trees for a bigger harvest"),
        ("Balcony Container Gardens", "grow herbs and tomatoes in pots on a small balcony"),
        ("Wildflower Meadows", "sow native flowers that feed bees and butterflies"),
        ("Seed Saving", "collect, dry and store seeds from your best plants"),
        ("Organic Pest Control", "protect crops from slugs and aphids without poisons"),
        ("Garden Design Basics", "paths, borders and planting plans for small plots"),
        ("Growing Roses", "plant, feed and prune roses for long flowering"),
    ],
    "photography": [
        ("Camera Settings Demystified", "aperture, shutter speed and ISO on a manual camera"),
        ("Portrait Lighting", "window light, reflectors and flash for flattering portraits"),
        ("Landscape Photography", "composition, golden hour and sharp wide scenes"),
        ("Street Photography", "candid moments and storytelling in busy city streets"),
        ("Photo Editing Workflow", "develop raw files, colour correct and export"),
        ("Smartphone Photography", "take striking pictures with the phone in your pocket"),
        ("Night Sky Photography", "photograph stars and the milky way with long exposures"),
        ("Wildlife Photography", "telephoto lenses, patience and animal behaviour"),
        ("Food Photography", "style and light dishes so they look delicious"),
        ("Black and White Photography", "see in tones, contrast and texture"),
    ],
    "music": [
        ("Guitar for Beginners", "chords, strumming patterns and your first songs"),
        ("Piano Foundations", "read sheet music and play with both hands"),
        ("Music Theory Essentials", "scales, intervals, chords and harmony explained"),
        ("Home Recording", "microphones, interfaces and mixing a song at home"),
        ("Singing Technique", "breath support, pitch and a healthy voice"),
        ("Songwriting", "write lyrics and melodies that people remember"),
        ("Jazz Improvisation", "solo over chord changes with swing and feel"),
        ("Drumming Basics", "grooves, fills and keeping steady time"),
        ("Electronic Music Production", "synthesizers, beats and arrangement in a DAW"),
        ("Ukulele in a Weekend", "four strings, happy chords and sing-along songs"),
    ],
    "languages": [
        ("Spanish for Travellers", "order food, ask directions and chat with locals"),
        ("French Conversation", "everyday French dialogues and pronunciation"),
        ("Japanese Hiragana and Katakana", "read the Japanese syllabaries and simple words"),
        ("German Grammar", "cases, word order and verbs made manageable"),
        ("Italian for Food Lovers", "menus, markets and kitchen vocabulary in Italian"),
        ("Mandarin Tones", "hear and speak the four tones of Mandarin Chinese"),
        ("Business English", "emails, meetings and presentations at work"),
        ("Portuguese Basics", "greetings, numbers and travel phrases in Portuguese"),
        ("Sign Language Introduction", "fingerspelling and everyday signs"),
        ("Memory Techniques for Vocabulary", "spaced repetition and mnemonics for new words"),
    ],
    "fitness": [
        ("Couch to 5K", "a gentle running plan from walking to a five kilometre run"),
        ("Strength Training Basics", "squat, deadlift and press with good form"),
        ("Yoga for Flexibility", "stretching flows to loosen hips and shoulders"),
        ("Mobility for Desk Workers", "short routines against stiff backs and necks"),
        ("Kettlebell Conditioning", "swings and circuits for strength and stamina"),
        ("Marathon Preparation", "long runs, pacing and race day nutrition"),
        ("Pilates Core", "controlled movements for a strong core and posture"),
        ("Swimming Technique", "freestyle stroke, breathing and efficient kicks"),
        ("Cycling Fitness", "build endurance on the road bike with interval training"),
        ("Mindful Meditation", "breathing practice to reduce stress and sleep better"),
    ],
    "finance": [
        ("Personal Budgeting", "track spending, build savings and pay down debt"),
        ("Investing for Beginners", "index funds, diversification and compound growth"),
        ("Understanding Taxes", "income tax, deductions and filing a return"),
        ("Retirement Planning", "pensions, savings rates and withdrawal strategies"),
        ("Reading Financial Statements", "balance sheets, income statements and cash flow"),
        ("Small Business Bookkeeping", "invoices, expenses and simple accounting"),
        ("Real Estate Basics", "mortgages, renting versus buying and property costs"),
        ("Behavioural Finance", "biases that make investors buy high and sell low"),
        ("Freelancer Finances", "pricing, irregular income and saving for taxes"),
        ("Financial Independence", "frugality, savings rate and early retirement maths"),
    ],
    "woodworking": [
        ("Hand Tool Woodworking", "saws, chisels and planes for joinery by hand"),
        ("Build a Bookshelf", "measure, cut and assemble a sturdy shelf"),
        ("Wood Finishing", "sanding, oils and varnish for a lasting finish"),
        ("Spoon Carving", "carve a wooden spoon from green wood with a knife"),
        ("Woodturning on the Lathe", "turn bowls and pens on a wood lathe"),
        ("Dovetail Joints", "mark and cut strong dovetail joints"),
        ("Furniture Restoration", "repair and refinish old chairs and tables"),
        ("Workshop Safety", "set up a safe workshop and use power tools carefully"),
        ("Outdoor Furniture", "build a garden bench from weather resistant timber"),
        ("Box Making", "small boxes with lids, hinges and fine joints"),
    ],
    "astronomy": [
        ("Stargazing for Beginners", "find constellations and planets with the naked eye"),
        ("Choosing a Telescope", "refractors, reflectors and mounts explained"),
        ("The Solar System", "planets, moons and the worlds around our sun"),
        ("Life of Stars", "how stars are born, shine and die as supernovae"),
        ("Galaxies and Cosmology", "the expanding universe and the big bang"),
        ("Observing the Moon", "craters, seas and lunar phases through binoculars"),
        ("Exoplanets", "how astronomers discover planets around other stars"),
        ("Astrophotography Processing", "stack and stretch images of deep sky objects"),
        ("Black Holes", "event horizons, gravity and what we can observe"),
        ("Space Exploration History", "rockets, moon landings and space probes"),
    ],
}

LEVELS = [
    ("Beginner", ["Start from zero.", "Gentle pace.", "No experience needed."], 4.0, 19.0),
    (
        "Intermediate",
        ["Go beyond the basics.", "Practice-heavy.", "Build on what you know."],
        8.0,
        39.0,
    ),
    ("Masterclass", ["Advanced projects.", "Expert feedback.", "Deep dive."], 14.0, 79.0),
]

#: Interests that tend to go together (shapes the co-occurrence signal).
AFFINITY = {
    "programming": "data-science",
    "data-science": "programming",
    "baking": "cooking",
    "cooking": "baking",
    "gardening": "cooking",
    "photography": "astronomy",
    "astronomy": "photography",
    "music": "languages",
    "languages": "music",
    "fitness": "cooking",
    "finance": "programming",
    "woodworking": "gardening",
}

NAMES = [
    "Ada", "Bruno", "Chidi", "Dana", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kira", "Luca", "Mei", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tess",
    "Uma", "Viktor", "Wen", "Ximena", "Yara", "Zane", "Aino", "Bilal", "Carmen", "Dev",
    "Esme", "Femi", "Gus", "Hana", "Ivo", "Jade", "Kofi", "Lena", "Milo", "Noor",
]  # fmt: skip


#: The Chinese catalogue slice (written for this project): subject, what it teaches, category.
ZH_SUBJECTS: list[tuple[str, str, str]] = [
    ("Python 编程入门", "用变量、循环和函数编写小程序，学会读懂报错信息", "programming"),
    ("数据库与 SQL", "用连接、索引和事务查询关系型数据库，写出高效的查询语句", "programming"),
    ("网页前端开发", "用 HTML、CSS 和 JavaScript 做出能交互的网页", "programming"),
    ("天然酵母面包", "养一罐天然酵母，烤出外皮酥脆、组织松软的面包", "baking"),
    ("法式甜点", "把黄油折进面团，做出层次分明的可颂和酥皮点心", "baking"),
    ("生日蛋糕裱花", "烤出平整的海绵蛋糕，打发奶油并裱出漂亮的花边", "baking"),
    ("个人理财入门", "记账、做预算、存应急金，让每个月的收支心中有数", "finance"),
    ("基金定投实战", "理解指数基金和分散投资，制定长期定投计划", "finance"),
    ("手机摄影构图", "用三分法、引导线和自然光拍出好看的照片", "photography"),
    ("人像摄影用光", "用反光板和窗边光线拍出柔和自然的人像", "photography"),
]
ZH_LEVELS = [
    ("入门", "零基础也能学。", 4.0, 19.0),
    ("进阶", "在基础上多做练习。", 8.0, 39.0),
    ("大师课", "完成进阶项目，导师点评。", 14.0, 79.0),
]
#: Demo users whose histories are Chinese items of one topic (user id, name, category).
ZH_USERS = [
    ("u41", "李明", "programming"),
    ("u42", "王芳", "baking"),
    ("u43", "张伟", "finance"),
    ("u44", "陈静", "photography"),
]


def build_zh_items(rng: random.Random) -> list[dict[str, object]]:
    """30 Chinese course items (``z001``..``z030``): 10 subjects x 3 levels."""
    items = []
    n = 0
    for subject, about, category in ZH_SUBJECTS:
        for level, blurb, hours, price in ZH_LEVELS:
            n += 1
            items.append(
                {
                    "item_id": f"z{n:03d}",
                    "title": f"{subject}：{level}",
                    "text": f"{about}。{blurb}",
                    "categories": category,
                    "created_at": START - rng.randint(0, 400) * DAY,
                    "price": price + rng.choice([0, 0, 10, -5]),
                    "duration_hours": hours + rng.choice([0, 1, 2]),
                }
            )
    return items


def build_zh_interactions(
    rng: random.Random, zh_items: list[dict[str, object]]
) -> list[dict[str, object]]:
    """Each Chinese demo user liked most Chinese items of their own topic, in level order."""
    rows = []
    for user_id, _, category in ZH_USERS:
        own = [it for it in zh_items if it["categories"] == category]
        t = START + rng.randint(0, 30) * DAY
        # Keep the last item of the topic unseen so the playground has something to offer.
        for item in own[:-1]:
            t += rng.randint(1, 4) * DAY + rng.randint(0, DAY)
            rows.append(
                {
                    "user_id": user_id,
                    "item_id": item["item_id"],
                    "rating": rng.choice([4, 5, 5]),
                    "timestamp": t,
                }
            )
    return rows


def build_items(rng: random.Random) -> list[dict[str, object]]:
    items = []
    n = 0
    for category, subjects in SUBJECTS.items():
        for subject, about in subjects:
            for level, blurbs, hours, price in LEVELS:
                n += 1
                extra = AFFINITY[category] if rng.random() < 0.15 else None
                cats = [category] + ([extra] if extra else [])
                items.append(
                    {
                        "item_id": f"c{n:03d}",
                        "title": f"{subject}: {level}",
                        "text": f"Learn to {about}. {rng.choice(blurbs)}",
                        "categories": "|".join(cats),
                        "created_at": START - rng.randint(0, 400) * DAY,
                        "price": price + rng.choice([0, 0, 10, -5]),
                        "duration_hours": hours + rng.choice([0, 1, 2]),
                    }
                )
    return items


def build_interactions(
    rng: random.Random, items: list[dict[str, object]]
) -> list[dict[str, object]]:
    by_cat: dict[str, list[dict[str, object]]] = {}
    for item in items:
        by_cat.setdefault(str(item["categories"]).split("|")[0], []).append(item)
    cats = list(SUBJECTS)
    rows = []
    for u, _ in enumerate(NAMES):
        main = cats[u % len(cats)]
        second = AFFINITY[main] if rng.random() < 0.6 else rng.choice(cats)
        t = START + rng.randint(0, 30) * DAY
        taken: set[str] = set()
        # learners climb levels within a subject: beginner -> intermediate -> masterclass
        for _ in range(rng.randint(12, 30)):
            roll = rng.random()
            pool = by_cat[main] if roll < 0.65 else by_cat[second] if roll < 0.9 else items
            start = rng.randrange(0, len(pool) - 2, 3) if len(pool) >= 3 else 0
            for step in range(rng.choice([1, 1, 2, 3])):
                item = pool[min(start + step, len(pool) - 1)]
                if item["item_id"] in taken:
                    continue
                taken.add(str(item["item_id"]))
                t += rng.randint(1, 4) * DAY + rng.randint(0, DAY)
                liked = roll < 0.9
                rating = rng.choice([4, 5, 5]) if liked else rng.choice([1, 2, 3, 4])
                rows.append(
                    {
                        "user_id": f"u{u + 1:02d}",
                        "item_id": item["item_id"],
                        "rating": rating,
                        "timestamp": t,
                    }
                )
    return rows


def main() -> None:
    rng = random.Random(SEED)
    items = build_items(rng)
    interactions = build_interactions(rng, items)
    # The Chinese slice has its own generator, so the English rows stay byte-identical.
    zh_rng = random.Random(SEED + 1)
    zh_items = build_zh_items(zh_rng)
    items += zh_items
    interactions += build_zh_interactions(zh_rng, zh_items)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("items.csv", items), ("interactions.csv", interactions)):
        with (OUT / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with (OUT / "users.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "name"])
        for u, name in enumerate(NAMES):
            writer.writerow([f"u{u + 1:02d}", name])
        for user_id, name, _ in ZH_USERS:
            writer.writerow([user_id, name])
    users = len(NAMES) + len(ZH_USERS)
    print(f"{len(items)} items, {len(interactions)} interactions, {users} users -> {OUT}")


if __name__ == "__main__":
    main()
