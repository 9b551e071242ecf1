"""Who may see and change what: tenancy, visibility and roles, in one place (SPEC §2).

Every customer query starts from `Scope.customers()`, which pins the workspace
and, for reps under `visibility=own`, the owner; every change is checked with
`Scope.require(action, customer)`. Handlers never filter by workspace themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select

from storage.models import Customer

ROLES = ("rep", "manager", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}


class Forbidden(Exception):
    """The member's role does not allow the action; `needed` is the least role that does;
    `owner` when the customer's owner could do it too."""

    def __init__(self, action: str, needed: str, *, owner: bool = False) -> None:
        super().__init__(f"{action} needs {needed}")
        self.action = action
        self.needed = needed
        self.owner = owner


#: Per-customer actions. "visible": anyone who can see the customer (a rep who
#: visited a colleague's customer can still log it); "owner": the owner or a
#: manager; otherwise the least role.
CUSTOMER_RULES = {
    "view": "visible",
    "log": "visible",
    "remind": "visible",
    "feedback": "visible",
    "tag": "visible",
    "edit": "owner",
    "deal": "owner",
    "assign": "owner",
    "delete": "manager",
    "restore": "manager",
    "merge": "manager",
    "forget": "admin",
}


#: `Scope.among`'s statements: for a scope that sees every customer, and for one that sees its own.
_AMONG: dict[bool, Select[tuple[Customer]]] = {}


@dataclass(frozen=True)
class Scope:
    workspace_id: int
    member_id: int
    role: str
    visibility: str = "team"

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def require_role(self, role: str, action: str) -> None:
        if not self.at_least(role):
            raise Forbidden(action, role)

    @property
    def sees_only_own(self) -> bool:
        return self.visibility == "own" and not self.at_least("manager")

    def customers(self, *, deleted: bool = False) -> Select[tuple[Customer]]:
        """Customers this member may see (or, with `deleted=True`, the deleted ones)."""
        query = select(Customer).where(Customer.workspace_id == self.workspace_id)
        query = query.where(Customer.deleted_at.is_not(None) if deleted else Customer.deleted_at.is_(None))
        if self.sees_only_own:
            query = query.where(Customer.owner_id == self.member_id)
        return query

    def visible(self, statement: Select[Any]) -> Select[Any]:
        """`statement` (over customers) narrowed to the live ones this member may see by bound values
        (`values()`), so that one statement, built once, serves every scope of its kind."""
        statement = statement.where(Customer.workspace_id == bindparam("workspace_id"), Customer.deleted_at.is_(None))
        return statement.where(Customer.owner_id == bindparam("member_id")) if self.sees_only_own else statement

    def values(self) -> dict[str, int]:
        """The values `visible()` binds."""
        return {"workspace_id": self.workspace_id, "member_id": self.member_id}

    def among(self, ids: list[int]) -> tuple[Select[tuple[Customer]], dict[str, Any]]:
        """The statement and parameters for the customers this member may see among `ids`, in number
        order (at most 1,000): the read of a `/find`, of a fuzzy "which one?". Built once per kind of
        scope: a statement built per call has its cache key computed afresh.

        The workspace is checked as `workspace_id + 0`, which no index serves: SQLite's planner, without
        statistics, takes `workspace_id = ?` for a seek of a few rows and walked the whole workspace's
        part of an index rather than look up 200 ids (14 ms of a `/find` at 100,000 customers); and the
        order is `number + 0`, so that neither planner walks the book in number order to skip the sort
        of a few rows."""
        statement = _AMONG.get(self.sees_only_own)
        if statement is None:
            statement = select(Customer).where(
                Customer.workspace_id + 0 == bindparam("workspace_id"), Customer.deleted_at.is_(None),
                Customer.id.in_(bindparam("ids", expanding=True)))
            if self.sees_only_own:
                statement = statement.where(Customer.owner_id == bindparam("member_id"))
            statement = _AMONG[self.sees_only_own] = statement.order_by(Customer.number + 0).limit(1000)
        return statement, {"workspace_id": self.workspace_id, "ids": ids, "member_id": self.member_id}

    def can(self, action: str, customer: Customer) -> bool:
        if customer.workspace_id != self.workspace_id:
            return False
        rule = CUSTOMER_RULES[action]
        if rule == "visible":
            return not self.sees_only_own or customer.owner_id == self.member_id
        if rule == "owner":
            return self.at_least("manager") or customer.owner_id == self.member_id
        return self.at_least(rule)

    def may_change_entry(self, customer: Customer, recorded_by: int | None) -> bool:
        """One interaction, deal or feedback: whoever recorded it may correct or remove it, and a
        manager any, on a customer they can see."""
        return self.can("view", customer) and (recorded_by == self.member_id or self.at_least("manager"))

    def require(self, action: str, customer: Customer) -> None:
        if not self.can(action, customer):
            rule = CUSTOMER_RULES[action]
            raise Forbidden(action, "manager" if rule in ("owner", "visible") else rule, owner=rule == "owner")
