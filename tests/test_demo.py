"""The scripted console demos (tests/demo/console_en.txt, console_zh.txt) as a person runs them:
`crm-bot console < console_en.txt`, every reply checked in order."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(__file__).with_name("demo")

#: Per demo: how it is started, and what its replies must say, in this order.
DEMOS = {
    "en": (["--as", "Alice"], {"DEFAULT_LOCALE": "en"}, [
        "crm-bot console — /help lists the commands; Ctrl-D or Ctrl-C quits.",
        "You are Alice.",
        "Added #1 Wang Fang · Huawei.", "Company: Huawei",
        "Added #2 Bob.",
        "Logged for #2 Bob: note",  # a 300-byte last word is a note, not a file name to look up
        "“sent them the console_en.txt”",  # a last word naming a file stays in the note
        "Import of my customers.csv", "Added: 2;",  # a quoted path with a space
        "2 found:", "#3 Zhang San · Acme",
        "Which customer? Write it like /merge <keep> <drop>, e.g. /merge #12 #15",
        "Which customer? Write it like /deal <customer> <amount>",
        "Which customer? Write it like /history <customer>, e.g. /history #12",
        "“vip” is an automatic tag: I keep it up to date myself (vip, new, silent, at-risk, unhappy, promoter, "
        "incomplete).",
        "Added: #key-account",
        "Reminder #1: #2 Bob",
        "My day · Alice", "[1] ➕ Add customer   [2] 📝 Log a call or visit",
        "Log a contact: I'll ask one thing at a time.",  # button 2 pressed
        "Cancelled. Nothing was changed.",
        "Now typing as Carol.", "My settings · Alice's customers", "Name: Carol", "Role: rep",
        "This needs the manager role or higher.",
        "Only an admin can do this.",
        "Now typing as Alice.", "Role: admin",
        "Carol: role rep → manager.",
        "My settings · Alice's customers",
        "Deal recorded: ¥12,500 from #2 Bob", "Undone: your deal of ¥12,500 for #2 Bob is removed.",
        "Auto tags: −vip",  # /undo: the tier and the vip tag go with the deal
        "Deal recorded: ¥12,000 from #2 Bob", "Changed deal 1 of #2 Bob: Amount: ¥12,000 → ¥15,000.",
        "Latest deal: deal 1 · ¥15,000", "• log 2 · ", "[6] Edit deal 1   [7] Delete deal 1",
        "Remove deal 1 of #2 Bob?", "[1] Remove   [2] Cancel",
        "Removed from #2 Bob: deal 1 · ", "Value tier: A (high value) → —",
        "Updated: Company, Title.",  # the first /edit sets both
        "Updated: Title.", "Nothing changed: Company already had those values.",
        "looks like the same person (same phone)", "Kept the existing record and filled in: Title.",
        "Kept under Preferences, since they differ from this record: Name Wang Fan.",
        "birthday_days: 3 days ahead → 5 days ahead",
    ]),
    "zh": (["--as", "李经理"], {"DEFAULT_LOCALE": "zh"}, [
        "crm-bot 控制台 — /help 查看全部命令；按 Ctrl-D 或 Ctrl-C 退出。",
        "当前身份：李经理。",
        "已添加 #1 王芳 · 华为。", "公司：华为", "负责人：李经理",
        "#1 王芳 · 华为 看起来是同一个人（同一公司、姓名相近）", "已添加 #2 王方 · 华为。",  # read alike; button 2
        "已记录 #1 王芳 · 华为：电话",  # 86+ Chinese characters without a space: a note, no crash
        "“发了 console_zh.txt”",
        "导入 my customers.csv", "新增 2",
        "找到 2 位：",
        "哪位客户？请这样写：/merge <保留> <并入>，例如 /merge #12 #15",
        "哪位客户？请这样写：/feedback <客户> <1-5> [评价]，例如 /feedback #12 5 对售后很满意",
        "哪位客户？请这样写：/forget <客户>，例如 /forget #12",
        "“vip”是自动标签，由系统自动维护（重要客户、新客户、沉默、流失风险、不满意、推荐者、资料不全）。",
        "已添加：#重点",
        "提醒 #1：#1 王芳 · 华为",
        "我的一天 · 李经理", "[1] ➕ 添加客户   [2] 📝 记录电话或拜访", "沉默客户：0 位",
        "记录联系：我会一项一项地问。",
        "已取消，没有做任何修改。",
        "没有变化：公司与原来相同。", "· 电话 · 李经理：客户说下个月预算",
        "已切换为 小陈。", "我的设置 · 李经理的客户", "姓名：小陈", "角色：销售",
        "这需要经理及以上的角色。",
        "只有管理员可以这样做。",
        "已切换为 李经理。", "角色：管理员",
        "小陈：角色 销售 → 经理。",
        "已撤销：你为 #1 王芳 · 华为 记录的 ¥12,500 成交已删除。", "自动标签：−重要客户",
        "已更正 #1 王芳 · 华为 的成交 1：金额：¥12,000 → ¥15,000。",
        "最近成交：成交 1 · ¥15,000", "• 记录 1 · ", "[6] 修改成交 1   [7] 删除成交 1",
        "删除 #1 王芳 · 华为 的成交 1？", "[1] 删除   [2] 取消",
        "已从 #1 王芳 · 华为 删除：成交 1 · ", "价值等级：A（高价值） → —",
        "公司：华东贸易（上海）有限公司",
        "看起来是同一个人（电话相同）", "保留原记录，并补充了：职位。", "与原记录不同的信息已记在“偏好”里：姓名 王芳芳。",
        "birthday_days：提前 3 天 → 提前 5 天",
    ]),
}


@pytest.mark.parametrize("language", DEMOS)
def test_the_console_demo_runs_through_with_every_reply(language: str, tmp_path: Path) -> None:
    flags, settings, expected = DEMOS[language]
    for path in DEMO.iterdir():
        shutil.copy(path, tmp_path / path.name)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
           "TELEGRAM_BOT_TOKEN": "", "SLACK_BOT_TOKEN": "", "LANG": "C.UTF-8", "LOG_LEVEL": "INFO",
           "CRM_CONSOLE_USER": "", **settings}
    with (tmp_path / f"console_{language}.txt").open("rb") as script:
        done = subprocess.run([sys.executable, "-m", "bot", "console", *flags], cwd=tmp_path, env=env,
                              stdin=script, capture_output=True, timeout=120)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert "Traceback" not in output and "don't know the command" not in output and "这个命令" not in output
    position = 0
    for fragment in expected:
        found = output.find(fragment, position)
        assert found >= 0, f"{fragment!r} not found after position {position} in:\n{output[position:]}"
        position = found + len(fragment)
