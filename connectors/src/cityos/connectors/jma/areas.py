"""Areas of heat-stroke alerts (熱中症警戒アラート): 府県予報区 names and their JMA codes.

Prefectures are one area each; Hokkaido, Kagoshima and Okinawa are split by forecast
office as JMA's alerts are (e.g. 奄美地方 460040, 沖縄本島地方 471000). Shizuoka (with
Omaezaki) is 220000.
"""

from __future__ import annotations

import unicodedata

PREFECTURES = [
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
]
"""Aomori (02) to Miyazaki (45), in JIS order: the code is the JIS number followed by 0000."""

OTHER_AREAS: dict[str, str] = {
    "宗谷地方": "011000",
    "上川・留萌地方": "012000",
    "網走・北見・紋別地方": "013000",
    "十勝地方": "014030",
    "釧路・根室地方": "014100",
    "胆振・日高地方": "015000",
    "石狩・空知・後志地方": "016000",
    "渡島・檜山地方": "017000",
    "鹿児島県（奄美地方除く）": "460100",
    "鹿児島県（奄美地方を除く）": "460100",
    "奄美地方": "460040",
    "奄美地方（鹿児島県）": "460040",
    "沖縄本島地方": "471000",
    "大東島地方": "472000",
    "宮古島地方": "473000",
    "八重山地方": "474000",
}

HEAT_AREAS: dict[str, str] = {
    **{name: f"{number:02d}0000" for number, name in enumerate(PREFECTURES, start=2)},
    **OTHER_AREAS,
}


def heat_area_code(name: str) -> str | None:
    """The JMA code of a heat-alert area by name (half/full-width forms alike), or None."""
    return HEAT_AREAS.get(unicodedata.normalize("NFKC", name).replace("(", "（").replace(")", "）"))
