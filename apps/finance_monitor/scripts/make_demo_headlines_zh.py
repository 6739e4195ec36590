"""Write the bundled Chinese demo headlines (original text written for this project).

Run from the app folder: ``python scripts/make_demo_headlines_zh.py``. The phrases below
are this project's own writing about fictional companies (``FICTIONAL`` below, also
listed in ``demo_data/companies_zh.yaml``); the script combines them deterministically
(seed 13) into ``src/finance_monitor/demo_data/headlines_zh.jsonl`` with fields
``text``, ``topic``, ``sentiment``, ``tickers`` and ``split``.

The labels are the English demo headlines' labels (the same ten topics, and negative /
neutral / positive), so the Chinese heads predict what the rules, trends and the
dashboard already know. ``split`` holds out whole templates: in every (topic,
sentiment) cell the last ``HELD_OUT`` templates are ``test``, the others ``train``, so
the held-out accuracy is measured on phrasings the heads never saw (not on the same
sentence with another company name).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
OUT = HERE / "src/finance_monitor/demo_data/headlines_zh.jsonl"

# Fictional companies (names and codes invented for the demo; the codes sit in blocks
# that list no stock today: Shanghai 689xxx, Shenzhen 004xxx).
FICTIONAL = {
    "青澜科技": "689101.SH",
    "澜汀银行": "689102.SH",
    "朔川能源": "689103.SH",
    "云岫医药": "689104.SH",
    "金穗食品": "689105.SH",
    "远帆航空": "689106.SH",
    "星衡半导体": "004101.SZ",
    "华汀汽车": "004102.SZ",
    "鹤屿保险": "004103.SZ",
    "岚峰矿业": "004104.SZ",
}

HELD_OUT = 2
PER_TEMPLATE = 3

# topic -> sentiment -> templates. {co} company, {tk} code, {p} percent, {n} number.
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "Earnings": {
        "positive": [
            "{co}三季度净利润同比增长{p}%，超出市场预期",
            "{co}({tk})上调全年业绩指引，营收创历史新高",
            "{co}半年报亮眼，毛利率提升{p}个百分点",
            "{co}业绩预告：年度净利润预计翻倍",
            "{co}一季度扭亏为盈，营业收入大增{p}%",
            "{co}年报超预期，归母净利润增长{p}%",
        ],
        "negative": [
            "{co}三季度净利润同比下滑{p}%，不及预期",
            "{co}({tk})预告年度亏损，下调全年指引",
            "{co}半年报营收下降，毛利率大幅收窄",
            "{co}业绩爆雷，单季亏损{n}亿元",
            "{co}利润腰斩，成本上升拖累业绩",
            "{co}年报不及预期，归母净利润下降{p}%",
        ],
        "neutral": [
            "{co}将于下周四披露三季度报告",
            "{co}({tk})召开年度业绩说明会",
            "{co}季度营收与市场预期基本持平",
            "分析师预计{co}本季度每股收益约{n}角",
            "{co}公布年报披露时间安排",
            "{co}发布半年度业绩快报，各项指标与去年持平",
        ],
    },
    "M&A | Investments": {
        "positive": [
            "{co}宣布收购同行，市场反应积极",
            "{co}({tk})获溢价{p}%的收购要约，股价大涨",
            "{co}并购重组获监管批准",
            "{co}获产业基金战略投资{n}亿元",
            "{co}完成对海外资产的收购，协同效应显现",
            "{co}引入战略投资者，估值大幅提升",
        ],
        "negative": [
            "{co}重大资产重组终止，股价跳水",
            "{co}({tk})收购谈判破裂，投资者失望",
            "{co}对收购资产计提商誉减值{n}亿元",
            "股东大会否决{co}并购方案",
            "{co}并购标的业绩未达承诺，面临巨额减值",
            "{co}收购案遭监管叫停",
        ],
        "neutral": [
            "{co}正在评估出售物流业务的可能性",
            "{co}({tk})披露重大资产重组进展公告",
            "{co}拟参股一家新能源企业",
            "{co}筹划发行股份购买资产，股票停牌",
            "{co}与合作方签署投资意向书",
            "{co}设立产业投资基金，规模{n}亿元",
        ],
    },
    "Energy | Oil": {
        "positive": [
            "国际油价回升，{co}盈利前景改善",
            "{co}新油田投产，产量提升{p}%",
            "{co}({tk})获得大型光伏项目订单",
            "天然气需求旺盛，{co}销量创新高",
            "{co}储能业务快速增长，订单饱满",
            "{co}风电装机容量大增，发电收入上升",
        ],
        "negative": [
            "油价暴跌，{co}业绩承压",
            "{co}炼化装置停产检修，产量下降{p}%",
            "{co}({tk})海上钻井平台发生事故",
            "煤炭价格下行拖累{co}利润",
            "{co}光伏组件价格战加剧，毛利率下滑",
            "{co}新能源项目延期，投资者担忧",
        ],
        "neutral": [
            "欧佩克将于下月召开产量会议",
            "{co}公布上月原油产量数据",
            "{co}({tk})与地方政府签署能源合作框架协议",
            "国内成品油价格本周保持不变",
            "{co}发布年度碳排放报告",
            "{co}天然气管道项目进入环评阶段",
        ],
    },
    "Fed | Central Banks": {
        "positive": [
            "央行意外降息，股市应声上涨",
            "央行下调存款准备金率，释放长期资金{n}千亿元",
            "美联储暗示放缓加息，全球市场回暖",
            "央行加大流动性投放，市场信心提振",
            "降准落地，银行股集体走强",
            "央行表示将保持流动性合理充裕，债市大涨",
        ],
        "negative": [
            "美联储超预期加息，全球股市下挫",
            "央行收紧流动性，市场利率快速上行",
            "通胀数据高企，加息预期升温引发抛售",
            "央行官员警告金融风险上升",
            "美联储释放鹰派信号，新兴市场资金外流",
            "货币政策收紧担忧加剧，股债双杀",
        ],
        "neutral": [
            "央行今日开展逆回购操作",
            "美联储将于本周公布利率决议",
            "央行公布上月社会融资规模数据",
            "央行行长将出席金融论坛并发表讲话",
            "市场等待央行本月贷款市场报价利率公布",
            "美联储会议纪要将于周三发布",
        ],
    },
    "Legal | Regulation": {
        "positive": [
            "{co}胜诉，获赔{n}亿元",
            "{co}({tk})的监管调查结案，未受处罚",
            "{co}与监管机构达成和解，股价回升",
            "新规利好行业龙头，{co}受益",
            "{co}专利诉讼获判胜诉",
            "监管放开准入限制，{co}迎来发展机遇",
        ],
        "negative": [
            "{co}因信息披露违规被证监会立案调查",
            "{co}({tk})被处以{n}亿元罚款",
            "{co}涉嫌财务造假，遭监管问询",
            "{co}败诉，需赔偿巨额款项",
            "{co}被列入监管重点关注名单",
            "{co}实控人被采取强制措施",
        ],
        "neutral": [
            "证监会发布新的信息披露规则征求意见稿",
            "{co}诉讼案将于三月开庭审理",
            "{co}({tk})收到交易所问询函",
            "新版上市规则将于下季度起施行",
            "{co}回复监管关注函",
            "监管部门就行业新规召开座谈会",
        ],
    },
    "Personnel Change": {
        "positive": [
            "{co}任命资深行业专家为新任总裁，市场看好",
            "{co}({tk})迎来新董事长，战略转型提速",
            "知名经理人加盟{co}出任首席执行官",
            "{co}管理层增持股份，彰显信心",
            "{co}引进顶尖技术团队，研发实力增强",
            "{co}新任总经理上任后业务全面改善",
        ],
        "negative": [
            "{co}董事长突然辞职，股价大跌",
            "{co}({tk})财务总监被带走调查",
            "{co}高管集体离职引发市场担忧",
            "{co}核心技术团队出走",
            "{co}董事会内斗公开化，总裁被罢免",
            "{co}多名高管减持股份",
        ],
        "neutral": [
            "{co}董事会完成换届选举",
            "{co}({tk})聘任新的董事会秘书",
            "{co}副总经理因个人原因辞职",
            "{co}公告独立董事任期届满",
            "{co}任命新任财务总监",
            "{co}监事会主席变更",
        ],
    },
    "Company | Product News": {
        "positive": [
            "{co}新品发布会反响热烈，预订量超{n}万台",
            "{co}({tk})新药获批上市",
            "{co}获得大客户长期订单",
            "{co}新工厂投产，产能提升{p}%",
            "{co}自主研发芯片量产成功",
            "{co}海外市场销量大增，品牌影响力提升",
        ],
        "negative": [
            "{co}产品召回，涉及{n}万台",
            "{co}({tk})工厂发生火灾，生产中断",
            "{co}核心产品销量大幅下滑",
            "{co}遭遇数据泄露，用户信息外泄",
            "{co}新品质量问题频发，遭消费者投诉",
            "{co}主要客户取消订单，收入承压",
        ],
        "neutral": [
            "{co}将总部迁至新办公楼",
            "{co}({tk})发布新版官方网站",
            "{co}举办年度开发者大会",
            "{co}更新公司标识",
            "{co}在上海开设新的研发中心",
            "{co}公布新产品上市时间表",
        ],
    },
    "Currencies": {
        "positive": [
            "人民币汇率大幅升值，创两个月新高",
            "外资持续流入，人民币走强",
            "美元指数回落，人民币对美元升值",
            "人民币国际化进程加快，跨境结算量增长",
            "经济数据向好，人民币汇率企稳回升",
            "离岸人民币强势反弹，市场情绪改善",
        ],
        "negative": [
            "人民币汇率跌破关口，创年内新低",
            "资本外流加剧，人民币承压贬值",
            "美元走强，人民币大幅下跌",
            "外汇储备下降，汇率波动加剧",
            "离岸人民币急跌，市场避险情绪升温",
            "日元暴跌引发亚洲货币普遍走弱",
        ],
        "neutral": [
            "人民币中间价今日小幅调整",
            "外汇局公布上月外汇储备数据",
            "人民币对美元汇率收盘基本持平",
            "外汇市场本周交易清淡",
            "央行公布人民币汇率中间价",
            "离岸人民币在窄幅区间内波动",
        ],
    },
    "Dividend": {
        "positive": [
            "{co}大幅提高分红，每10股派{n}元",
            "{co}({tk})宣布特别分红，股东受益",
            "{co}推出高送转方案",
            "{co}分红比例提升至{p}%",
            "{co}首次实施现金分红",
            "{co}宣布回购股份并提高派息",
        ],
        "negative": [
            "{co}宣布暂停分红",
            "{co}({tk})削减股息{p}%",
            "{co}连续三年不分红引发股东不满",
            "{co}取消年度派息计划",
            "{co}分红方案遭股东大会否决",
            "{co}因资金紧张推迟派息",
        ],
        "neutral": [
            "{co}公布年度分红方案，与去年持平",
            "{co}({tk})发布权益分派实施公告",
            "{co}股息将于下月发放",
            "{co}确定分红股权登记日",
            "{co}维持每股派息不变",
            "{co}公告利润分配预案",
        ],
    },
    "Stock Movement": {
        "positive": [
            "{co}股价涨停，成交量放大",
            "{co}({tk})盘中大涨{p}%，创历史新高",
            "机构上调{co}评级至买入，股价走高",
            "{co}连续五个交易日上涨",
            "北向资金大举买入{co}",
            "{co}股价突破关键阻力位",
        ],
        "negative": [
            "{co}股价跌停，市值蒸发{n}亿元",
            "{co}({tk})盘中暴跌{p}%",
            "机构下调{co}评级，股价重挫",
            "{co}连续大跌，跌破发行价",
            "{co}遭主力资金大幅抛售",
            "{co}股价创年内新低",
        ],
        "neutral": [
            "{co}股价今日小幅波动",
            "{co}({tk})纳入指数成分股调整名单",
            "{co}今日股价收平",
            "{co}将于下周解禁部分限售股",
            "{co}股票交易情况公告",
            "{co}成交量与上周持平",
        ],
    },
}


def main() -> None:
    rng = random.Random(13)
    names = sorted(FICTIONAL)
    rows = []
    seen = set()
    for topic, by_sentiment in TEMPLATES.items():
        for sentiment, templates in by_sentiment.items():
            for index, template in enumerate(templates):
                split = "test" if index >= len(templates) - HELD_OUT else "train"
                with_company = "{co}" in template
                for _ in range(PER_TEMPLATE if with_company else 1):
                    name = names[rng.randrange(len(names))]
                    text = template.format(
                        co=name,
                        tk=FICTIONAL[name],
                        p=rng.randint(3, 45),
                        n=rng.randint(2, 90),
                    )
                    if text in seen:
                        continue
                    seen.add(text)
                    rows.append(
                        {
                            "text": text,
                            "topic": topic,
                            "sentiment": sentiment,
                            "tickers": [FICTIONAL[name]] if with_company else [],
                            "split": split,
                        }
                    )
    rng.shuffle(rows)
    OUT.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    print(f"wrote {len(rows)} headlines to {OUT}")


if __name__ == "__main__":
    main()
