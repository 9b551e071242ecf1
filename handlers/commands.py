"""Every command family; importing this module registers them all."""
from handlers import (  # noqa: F401
    customers,
    deals,
    digest,
    followups,
    guided,
    help,
    home,
    interactions,
    mapping,
    paging,
    records,
    settings,
    tags,
    team,
    transfer,
)
