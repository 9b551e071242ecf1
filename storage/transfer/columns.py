"""What each column of a file means: the headers other tools export, and a `Mapping` a person can change.

Headers are compared folded (width, case, punctuation and spaces ignored:
`E-mail 1 - Value` is `email1value`), with the prefixes some tools put on every
column dropped (`Person - Phone - Mobile`). A few headers mean different things
by what stands beside them, as people write them:

- `客户名称` is the company in a ledger that also has `联系人`, the WeChat name in a
  企业微信 export beside `客户备注名`, and the customer's name on its own;
- `Title` is the honorific (Mr., 先生) in a file that also has a job title
  column (Outlook), and the job title otherwise (Salesforce, Zoho, our export);
- `Name` beside only a given-name column is the family name (a vCard turned
  into CSV: N's first part), beside only a family-name column the given name.

A column no rule knows, that holds values, makes the mapping *unsure*: the
import shows how the first rows would land and asks before writing.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping as MappingType

#: What a person may map a column to (the mapping step's choices, `--map` targets).
TARGETS = ("name", "first_name", "last_name", "company", "title", "phone", "email", "address", "region",
           "industry", "size", "gender", "birthday", "source", "tags", "notes", "owner", "number", "unused")
#: Fields of the book a column can fill one value of.
SINGLE = ("company", "title", "region", "industry", "size", "gender", "birthday", "source", "cadence")
#: Roles only the rules give: name parts, labels of other columns, parts of an address.
INTERNAL = ("middle_name", "nickname", "honorific", "suffix", "address_part", "label", "stage", "cadence")


@dataclass(frozen=True)
class Role:
    """What one column holds. `detail`: the kind of a phone/e-mail/address (`Mobile`, a group like
    `business` for address parts), the part of an address (`city`), or whose label a label column is."""

    target: str
    detail: str = ""
    part: str = ""


UNUSED = Role("unused")
#: The free-text notes; `Role("notes", "=")` is a column kept in the notes under its own header.
NOTES = Role("notes")


@dataclass
class Column:
    index: int
    header: str
    role: Role
    known: bool = True  # a rule (or a person) said what it is


@dataclass
class Mapping:
    """Every column of the file and its role; `changed` holds what a person set by hand."""

    columns: list[Column]
    changed: dict[int, str] = field(default_factory=dict)

    def of(self, *targets: str) -> list[Column]:
        return [c for c in self.columns if c.role.target in targets]

    @property
    def has_name(self) -> bool:
        return bool(self.of("name", "first_name", "last_name", "nickname"))

    def unsure(self, samples: list[list[str]]) -> list[Column]:
        """Columns no rule knows that hold values in `samples` (the first rows)."""
        return [c for c in self.columns if not c.known and c.index not in self.changed
                and any(c.index < len(row) and row[c.index] for row in samples)]

    def with_change(self, index: int, target: str) -> "Mapping":
        """The mapping with column `index` set to `target` (one of TARGETS), by hand."""
        columns = [replace(c, role=Role(target, c.header if target == "notes" else ""), known=True)
                   if c.index == index else c for c in self.columns]
        return Mapping(columns, {**self.changed, index: target})

    def changes(self) -> dict[str, str]:
        """What was set by hand, as header → target (kept with a stored file)."""
        return {self.columns[i].header: target for i, target in self.changed.items() if i < len(self.columns)}


def header_key(text: str) -> str:
    """How headers are compared: width- and case-folded, letters and digits only (`E-mail` = `ｅｍａｉｌ`)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum()) or folded.strip()


def _table(*entries: tuple[Role, str]) -> dict[str, Role]:
    table: dict[str, Role] = {}
    for role, words in entries:
        for word in words.split("|"):
            table[header_key(word)] = role
    return table


_PHONE, _EMAIL, _ADDRESS = Role("phone"), Role("email"), Role("address")
#: Headers any file may use, from the tools teams leave (and what people type in a spreadsheet).
KNOWN = _table(
    (Role("name"), "name|full name|fullname|display name|contact name|contact|姓名|名字|客户姓名|联系人|"
                   "联系人姓名|客户备注名|备注名|客户|formatted name|fn|nom complet|nombre completo|氏名|名前|お名前"),
    (Role("first_name"), "first name|firstname|given name|givenname|given names|givennames|first|forename|名|"
                         "vorname|prénom|prenom|nombre"),
    (Role("last_name"), "last name|lastname|family name|familyname|surname|姓|nachname|nom|apellido|apellidos"),
    (Role("middle_name"), "middle name|middlename|additional name|additionalnames|中间名"),
    (Role("nickname"), "nickname|nick name|昵称|微信昵称|客户昵称|short name"),
    (Role("honorific"), "salutation|name prefix|prefix|prefixes|honorific|英文称谓|中文称谓|称谓|称呼|anrede|civilité"),
    (Role("suffix"), "suffix|name suffix|suffixes|后缀"),
    (Role("company"), "company|company name|organization|organisation|organization name|org|account name|"
                      "associated company|employer|公司|单位|公司名称|企业名称|企业|客户企业|备注企业名称|"
                      "所属公司|客户公司|firma|unternehmen|société|societe|entreprise|empresa|会社|会社名|勤務先"),
    (Role("title"), "job title|jobtitle|position|职位|职务|岗位|poste|puesto|funktion|title|role|役職|"
                    "organization title"),
    (Role("notes", "="), "department|部门|abteilung|organization department"),
    (_PHONE.__class__("phone", "Mobile"), "mobile|mobile phone|mobilephone|mobile phone number|cell|cell phone|"
                                          "cellphone|手机|手机号|手机号码|移动电话|企微手机号|备注手机号|"
                                          "phone mobile|handy|portable|móvil|movil|celular|携帯|携帯電話|携帯番号"),
    (_PHONE, "phone|phone number|phonenumber|telephone|tel|电话|联系电话|电话号码|座机|固话|办公电话|"
             "商务电话|商务电话 2|单位电话|单位主要电话|住宅电话|住宅电话 2|家庭电话|其他电话|主要电话|"
             "车载电话|business phone|business phone 2|home phone|home phone 2|other phone|primary phone|"
             "company main phone|car phone|assistant's phone|assistant phone|asst phone|callback|"
             "radio phone|isdn|work phone|phone work|phone home|phone other|telefon|téléphone|telephone fixe|"
             "teléfono|telefono|電話|電話番号"),
    (Role("notes", "="), "fax|business fax|home fax|other fax|商务传真|住宅传真|其他传真|传真|telefax"),
    (Role("notes", "="), "pager|寻呼机|telex|电报|tty/tdd phone|tty/tdd 电话"),
    (_EMAIL, "email|e-mail|mail|email address|e-mail address|邮箱|电子邮件|电子邮箱|邮件|电子邮件地址|"
             "电子邮件 2 地址|电子邮件 3 地址|secondary email|email work|email home|email other|work email|"
             "personal email|courriel|correo|correo electrónico|e-mail-adresse|メール|メールアドレス"),
    (_ADDRESS, "address|postal address|full address|mailing address|地址|联系地址|详细地址|通讯地址|"
               "公司地址|adresse|dirección|direccion|anschrift|住所"),
    (Role("region"), "region|地区|区域|所在地区|所在城市|城市|省份|所在省市|客户所在地区|area|地域|ort|stadt|ville|"
                     "ciudad|都道府県"),
    (Role("industry"), "industry|行业|所属行业|branche|secteur"),
    (Role("size"), "size|company size|规模|公司规模|employees|number of employees|numberofemployees|员工人数"),
    (Role("gender"), "gender|sex|性别|geschlecht|sexe|género|genero"),
    (Role("birthday"), "birthday|birth date|birthdate|date of birth|dob|生日|出生日期|bday|geburtstag|"
                       "date de naissance|fecha de nacimiento"),
    (Role("source"), "source|lead source|leadsource|来源|客户来源|original source|添加渠道|渠道|来源渠道|quelle"),
    (Role("tags"), "tags|tag|标签|labels|label|categories|category|类别|分类|group membership|客户标签|"
                   "企业标签|kategorien|catégories"),
    (NOTES, "notes|note|备注|附注|描述|描述信息|description|comments|comment|remarks|偏好|prefs|preferences|"
            "memo|跟进记录|备注信息|notiz|notizen|bemerkung|remarques|notas|備考|メモ"),
    (Role("owner"), "owner|contact owner|负责人|所属销售|销售|业务员|跟进人|所属企微号|添加人|归属人|ownerid|"
                    "owner id|account owner|lead owner|sales owner|owner name|客户负责人|所属员工|销售负责人|"
                    "owner alias|owner email"),
    (Role("number"), "#|编号"),
    (Role("stage"), "stage|阶段"),
    (Role("cadence"), "cadence|联系周期"),
    (Role("notes", "="), "website|web page|webpage|website url|url|网页|网站|homepage"),
    (Role("notes", "="), "lifecycle stage|lead status|添加时间|最后跟进时间|最近跟进时间|last activity date|"
                        "last contacted|anniversary|纪念日|assistant|assistant's name|assistant name|"
                        "助理的姓名|reports to|spouse|配偶|children|子女|hobby|业余爱好|profession|职业|"
                        "skype id|twitter|wechat|微信|微信号|qq|linkedin|im|office location|办公地点|"
                        "客户类型|客户状态|状态|status"),
    (UNUSED, "record id|id|序号|no|no.|number|row|行号|create date|created date|createddate|created time|"
             "created at|last modified date|lastmodifieddate|modified time|last activity time|"
             "marketing contact status|photo|file as|phonetic first name|phonetic middle name|"
             "phonetic last name|yomi name|given name yomi|additional name yomi|family name yomi|initials|"
             "keywords|关键词|location|地点|language|语言|priority|优先级|sensitivity|敏感度|subject|"
             "billing information|记帐信息|directory server|目录服务器|mileage|里程|internet free busy|"
             "internet 忙闲|private|私有|e-mail type|e-mail display name|e-mail 2 type|e-mail 2 display name|"
             "e-mail 3 type|e-mail 3 display name|电子邮件类型|电子邮件显示名称|电子邮件 2 类型|电子邮件 2 显示名|"
             "电子邮件 3 类型|电子邮件 3 显示名|created by|modified by|email opt out|isdeleted|masterrecordid|"
             "accountid|reportstoid|客户id|externaluserid|unionid|associated company ids|associated deal|"
             "associated deal ids|visible to|add time|update time|open deals|closed deals|won deals|lost deals|"
             "next activity date|marketing status|vendor name|user 1|user 2|user 3|user 4|用户 1|用户 2|用户 3|"
             "用户 4|account|帐户|government id number|身份证编号|organizational id number|工作证号码|"
             "referred by|引用者|manager's name|经理姓名|value tier|lifetime value (est.)|last contact|"
             "next follow-up|价值等级|终身价值（估）|最近联系|下次跟进|tier|ltv"),
)
#: Headers ending in a type/label/display name say something about another column: not data.
_NUMBERED = [
    (re.compile(r"^(?:e?mail|emailaddress)(\d*)(?:value|address)?$"), lambda m: _EMAIL),
    (re.compile(r"^(?:e?mail)(work|home|other|internet|\d+)+$"), lambda m: _EMAIL),
    (re.compile(r"^phone(\d+)(?:value)?$"), lambda m: _PHONE),
    (re.compile(r"^phone(\d+)(?:type|label)$"), lambda m: Role("label", "phone", m[1])),
    (re.compile(r"^e?mail(\d+)(?:type|label|displayname)$"), lambda m: Role("label", "email", m[1])),
    (re.compile(r"^address(\d+)formatted$"), lambda m: _ADDRESS),
    (re.compile(r"^address(\d+)(street|city|pobox|region|postalcode|country|extendedaddress)$"),
     lambda m: Role("address_part", f"address{m[1]}", _PART[m[2]])),
    (re.compile(r"^address(\d+)(?:type|label)$"), lambda m: UNUSED),
    (re.compile(r"^organi[sz]ation(\d+)name$"), lambda m: Role("company")),
    (re.compile(r"^organi[sz]ation(\d+)title$"), lambda m: Role("title")),
    (re.compile(r"^organi[sz]ation(\d+)department$"), lambda m: Role("notes", "=")),
    (re.compile(r"^organi[sz]ation(\d+)\w+$"), lambda m: UNUSED),
    (re.compile(r"^(?:website|relation|event|customfield|im)(\d+)(?:type|label|service)$"), lambda m: UNUSED),
    (re.compile(r"^(?:website|relation|event|customfield|im)(\d+)value$"), lambda m: Role("notes", "=")),
    (re.compile(r"^tel(?:fax|pager)\w*$"), lambda m: Role("notes", "=")),
    (re.compile(r"^tel(?:cell|voice|work|home|text|video|textphone|main|\d)\w*$"), lambda m: _PHONE),
    (re.compile(r"^(business|home|other|mailing|billing|shipping|work)?"
                r"(street\d?|streetaddress|city|state|province|stateprovince|stateregion|postalcode|zip|"
                r"zippostalcode|zipcode|postcode|country|countryregion|pobox|addresspobox)$"),
     lambda m: Role("address_part", m[1] or "", _PART[re.sub(r"\d$", "", m[2])])),
    (re.compile(r"^(商务地址|住宅地址|其他地址)(街道\d?|市县|省市自治区|邮政编码|国家地区|邮箱)$"),
     lambda m: Role("address_part", m[1], _PART[re.sub(r"\d$", "", m[2])])),
    (re.compile(r"^(?:street|city|region|postalcode|country)(work|home)?$"),
     lambda m: Role("address_part", m[1] or "", "")),
]
_PART = {"street": "street", "streetaddress": "street", "extendedaddress": "street", "city": "city",
         "pobox": "pobox", "addresspobox": "pobox", "region": "state", "state": "state", "province": "state",
         "stateprovince": "state", "stateregion": "state", "postalcode": "postal", "zip": "postal",
         "zippostalcode": "postal", "zipcode": "postal", "postcode": "postal", "country": "country",
         "countryregion": "country", "街道": "street", "市县": "city", "省市自治区": "state",
         "邮政编码": "postal", "国家地区": "country", "邮箱": "pobox"}
#: Prefixes some tools put on every column (Pipedrive, HubSpot's association columns).
_PREFIXES = re.compile(r"^(person|contact|people|lead)\s*[-:–]\s*", re.IGNORECASE)
_COMPANY_PREFIX = re.compile(r"^(organi[sz]ation|company|account)\s*[-:–]\s*", re.IGNORECASE)
_OTHER_OBJECT = re.compile(r"^(deal|activity|product|note)\s*[-:–]\s*", re.IGNORECASE)
_JOB_TITLE_KEYS = {header_key(w) for w in ("job title", "jobtitle", "职务", "职位", "position", "岗位")}


def role_of(header: str, labels: MappingType[str, str] = {}) -> Role | None:
    """The role a header has on its own (None: unknown); `labels` are our export's header → column."""
    text = header.strip()
    exported = labels.get(header_key(text))
    if exported is not None:
        return _EXPORT_ROLES.get(exported, Role(exported) if exported in TARGETS else UNUSED)
    if _OTHER_OBJECT.match(text):
        return UNUSED
    company = _COMPANY_PREFIX.match(text)
    if company:
        rest = header_key(text[company.end():])
        return Role("company") if rest in ("name", "") else (Role("notes", "=") if rest in KNOWN else UNUSED)
    text = _PREFIXES.sub("", text)
    key = header_key(text)
    # Pipedrive's `Phone - Mobile`, `Email - Work`: the kind after a dash
    kind = re.match(r"^(phone|e-?mail)\s*-\s*(\w+)$", text, re.IGNORECASE)
    if kind:
        return Role("phone" if kind[1].lower() == "phone" else "email", kind[2].title())
    if key in KNOWN:
        return KNOWN[key]
    for pattern, role in _NUMBERED:
        found = pattern.match(key)
        if found:
            return role(found)
    return None


#: Our export's columns (handlers pass their labels in every language) → roles.
_EXPORT_ROLES = {"prefs": NOTES, "tier": UNUSED, "ltv": UNUSED, "last_contact": UNUSED,
                 "next_followup": UNUSED, "stage": Role("stage"), "number": Role("number"), "tags": Role("tags"),
                 "owner": Role("owner"), "cadence": Role("cadence")}


def guess_mapping(header: list[str], labels: MappingType[str, str] = {}) -> Mapping:
    """Each column's role from its header, then the rules that look at the neighbours."""
    columns = []
    for index, text in enumerate(header):
        role = role_of(text, labels) if text.strip() else UNUSED
        if role is not None and role.detail == "=":
            role = Role("notes", text.strip())
        columns.append(Column(index, text.strip(), role or UNUSED, known=role is not None))
    _in_context(columns)
    return Mapping(columns)


def _in_context(columns: list[Column]) -> None:
    keys = {header_key(c.header) for c in columns}
    targets = {c.role.target for c in columns}
    for column in columns:
        key = header_key(column.header)
        if key == header_key("客户名称"):
            column.known = True
            if "联系人" in keys or "联系人姓名" in keys:
                column.role = Role("company")
            elif "客户备注名" in keys or "备注名" in keys:
                column.role = Role("nickname", "微信昵称")
            else:
                column.role = Role("name")
        elif key == "title" and column.role.target == "title" and keys & _JOB_TITLE_KEYS:
            column.role = Role("honorific")
    names = [c for c in columns if c.role.target == "name"]
    if names and "first_name" in targets and "last_name" not in targets:
        names[0].role = Role("last_name")
    elif names and "last_name" in targets and "first_name" not in targets:
        names[0].role = Role("first_name")
    for extra in [c for c in columns if c.role.target == "name"][1:]:  # 姓名 and 客户姓名: keep the second in notes
        extra.role = NOTES


def header_row(rows: Iterable[tuple[int, list[str]]], labels: MappingType[str, str] = {},
               scan: int = 10) -> tuple[int, list[str]] | None:
    """The header among the first `scan` non-empty rows: the first that names the customer (a title
    row above it is skipped), else the one with the most known headers, else the first."""
    best: tuple[int, tuple[int, list[str]]] | None = None
    first: tuple[int, list[str]] | None = None
    for seen, (line, cells) in enumerate((r for r in rows if any(r[1])), start=1):
        first = first or (line, cells)
        mapping = guess_mapping(cells, labels)
        known = sum(1 for c in mapping.columns if c.known and c.header)
        if mapping.has_name and known >= 1 and (known >= 2 or len([c for c in cells if c]) == 1):
            return line, cells
        if known and (best is None or known > best[0]):
            best = (known, (line, cells))
        if seen >= scan:
            break
    return best[1] if best else first


def target_names(localise: MappingType[str, str]) -> dict[str, str]:
    """Every way to name a target in `--map` or a button: the English key and the given labels."""
    names = {header_key(t): t for t in TARGETS}
    names.update({header_key(label): target for target, label in localise.items()})
    return names
