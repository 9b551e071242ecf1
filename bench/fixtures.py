"""Synthetic customer books and lookups shared by the search and memory benches.

A realistic mix for a team selling in China and abroad: ~60% Chinese names
(common surnames, one or two given-name characters), ~40% Latin first + last
names, a few mixed `王芳 Wendy` names, and about 70% with a company.
Everything is seeded, so every run measures the same data.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Iterator, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from storage.search import initials, pinyin, words  # noqa: E402

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤单"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建文辉力国东晨宇浩然欣怡子涵梓轩一诺雨萱思远"
    "嘉怡佳琪俊杰志强海燕春梅晓峰立新永健雪梅小龙云飞德胜金凤丽娟鹏飞少华家豪婷婷秋月天佑博文"
)
FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa Matthew Betty Anthony Margaret "
    "Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Dorothy Kevin "
    "Carol Brian Amanda George Melissa Edward Deborah Ronald Stephanie Timothy Rebecca Jason Sharon Jeffrey "
    "Laura Ryan Cynthia Jacob Kathleen Gary Amy Nicholas Shirley Eric Angela Jonathan Helen Stephen Anna "
    "Larry Brenda Justin Pamela Scott Nicole Brandon Emma Benjamin Samantha Samuel Katherine Gregory Christine "
    "Frank Debra Alexander Rachel Raymond Catherine Patrick Carolyn Jack Janet Dennis Ruth Jerry Maria Tyler "
    "Heather Aaron Diane Jose Virginia Adam Julie Henry Joyce Nathan Victoria Douglas Olivia Zachary Kelly "
    "Peter Christina Kyle Lauren Walter Joan Ethan Evelyn Jeremy Judith Harold Megan Keith Cheryl Christian "
    "Andrea Roger Hannah Noah Martha Gerald Jacqueline Carl Frances Terry Gloria Sean Ann Austin Teresa "
    "Wendy Kathryn Arthur Sara Lawrence Janice Dylan Jean Jesse Alice Jordan Madison Bryan Doris Billy Abigail"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz "
    "Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson "
    "Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
    "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins "
    "Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero "
    "Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant "
    "Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez "
    "McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford "
    "Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer"
).split()
COMPANY_WORDS = (
    "Acme Globex Initech Umbrella Stark Wayne Wonka Cyberdyne Tyrell Soylent Hooli Vandelay Pied Piper "
    "Gringotts Oscorp Aperture Massive Dynamic Black Mesa Blue Sun Monarch Nakatomi Virtucon Zorg "
    "Northwind Contoso Fabrikam Tailspin Litware Adatum Proseware Woodgrove Fourth Coffee Alpine Ski "
    "Summit Harbor Pioneer Evergreen Silver Oak Granite Falcon Horizon Redwood Lakeside Sterling Crescent"
).split()
COMPANY_SUFFIXES = ("Inc", "Ltd", "Corp", "LLC", "Group", "Holdings", "Trading", "Logistics", "Systems", "Foods")
CN_COMPANY_HEADS = (
    "华为 阿里巴巴 腾讯 百度 京东 美团 小米 比亚迪 海尔 格力 联想 中兴 万科 顺丰 网易 携程 蔚来 理想 "
    "长城 吉利 伊利 蒙牛 茅台 五粮液 恒瑞 迈瑞 宁德 隆基 三一 徐工 中联 潍柴 福耀 安踏 李宁 波司登 "
    "东方 华东 华南 华北 新锐 恒通 宏达 鑫源 瑞丰 金鼎 天成 盛世 嘉禾 永和 同创 卓越 博远 启明"
).split()
CN_COMPANY_TAILS = ("科技有限公司", "贸易有限公司", "集团", "电子", "实业", "物流", "食品", "医疗器械", "网络科技")


class FakeCustomer(NamedTuple):
    id: int
    name: str
    company: str | None


def _companies(rng: random.Random, count: int) -> list[str]:
    companies = []
    for _ in range(count):
        if rng.random() < 0.5:
            companies.append(f"{rng.choice(CN_COMPANY_HEADS)}{rng.choice(CN_COMPANY_TAILS)}")
        else:
            head = " ".join(rng.sample(COMPANY_WORDS, rng.choice((1, 1, 2))))
            companies.append(f"{head} {rng.choice(COMPANY_SUFFIXES)}")
    return companies


def _name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.58:
        return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
    if roll < 0.60:
        return f"{rng.choice(SURNAMES)}{rng.choice(GIVEN)} {rng.choice(FIRST_NAMES)}"
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def customers(count: int, seed: int = 7) -> Iterator[FakeCustomer]:
    """`count` customers, ids 1..count, generated lazily (the memory bench keeps none of them)."""
    rng = random.Random(seed)
    companies = _companies(rng, max(50, count // 25))
    for customer_id in range(1, count + 1):
        company = rng.choice(companies) if rng.random() < 0.7 else None
        yield FakeCustomer(customer_id, _name(rng), company)


def _typo(rng: random.Random, text: str) -> str:
    """Swap two neighbouring letters, or drop one: the slips people make typing fast."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 2)
    if rng.random() < 0.6:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + text[i + 1 :]


def lookups(book: list[FakeCustomer], count: int, seed: int = 11) -> list[tuple[str, str]]:
    """(kind, query) pairs drawn from the book, mixing every way people refer to a customer."""
    rng = random.Random(seed)
    chinese = [c for c in book if not c.name.isascii()]
    latin = [c for c in book if c.name.isascii()]
    with_company = [c for c in book if c.company]
    makers = {
        "exact": lambda: rng.choice(book).name,
        "pinyin": lambda: pinyin("".join(words(rng.choice(chinese).name))),
        "spaced pinyin": lambda: " ".join(pinyin(ch) for ch in words(rng.choice(chinese).name)[0]),
        "initials": lambda: "".join(initials(w) for w in words(rng.choice(chinese).name)),
        "typo latin": lambda: _typo(rng, rng.choice(latin).name),
        "typo pinyin": lambda: _typo(rng, pinyin("".join(words(rng.choice(chinese).name)))),
        "company word": lambda: rng.choice(words(rng.choice(with_company).company or "")),
        "first name": lambda: rng.choice(latin).name.split()[0],
    }
    kinds = list(makers)
    return [(kind, makers[kind]()) for kind in (kinds[i % len(kinds)] for i in range(count))]
