"""The MFNER paper's reported F1 (mean, std over 5 seeds), transcribed from SPEC section 6.

These are the paper's numbers, printed beside ours in reports; never our results.
"""

from __future__ import annotations

# (label, K) -> {target: (mean, std)}; targets as dataset names, "avg" for the paper's Avg column.
TABLE3: dict[tuple[str, int], dict[str, tuple[float, float]]] = {
    ("ProtoNet", 1): {
        "twitter2017": (77.47, 0.50),
        "twitter2015": (55.22, 0.78),
        "snap": (73.83, 0.26),
        "avg": (68.84, 0.38),
    },
    ("WPZ", 1): {
        "twitter2017": (67.13, 0.98),
        "twitter2015": (53.36, 0.49),
        "snap": (65.73, 0.73),
        "avg": (62.07, 0.29),
    },
    ("SpanNER", 1): {
        "twitter2017": (75.54, 0.33),
        "twitter2015": (47.02, 0.22),
        "snap": (73.41, 0.31),
        "avg": (65.32, 0.20),
    },
    ("BERT+CRF", 1): {
        "twitter2017": (0.88, 0.87),
        "twitter2015": (0.78, 0.69),
        "snap": (1.02, 1.04),
        "avg": (1.62, 2.12),
    },
    ("ITA", 1): {"twitter2017": (0.88, 0.88), "twitter2015": (0.80, 0.70), "snap": (1.01, 1.04), "avg": (1.67, 2.10)},
    ("MFNER", 1): {
        "twitter2017": (82.58, 0.43),
        "twitter2015": (66.79, 0.33),
        "snap": (80.04, 0.57),
        "avg": (76.47, 0.35),
    },
    ("ProtoNet", 5): {
        "twitter2017": (84.36, 0.29),
        "twitter2015": (67.67, 0.27),
        "snap": (76.87, 0.20),
        "avg": (76.30, 0.19),
    },
    ("WPZ", 5): {
        "twitter2017": (76.61, 0.85),
        "twitter2015": (66.22, 0.70),
        "snap": (71.99, 0.84),
        "avg": (71.61, 0.38),
    },
    ("SpanNER", 5): {
        "twitter2017": (74.77, 0.26),
        "twitter2015": (50.67, 0.32),
        "snap": (67.97, 0.22),
        "avg": (64.47, 0.17),
    },
    ("BERT+CRF", 5): {
        "twitter2017": (1.09, 1.06),
        "twitter2015": (0.95, 0.75),
        "snap": (1.30, 1.27),
        "avg": (1.11, 0.92),
    },
    ("ITA", 5): {"twitter2017": (0.94, 0.96), "twitter2015": (0.95, 0.82), "snap": (1.10, 1.04), "avg": (1.00, 0.75)},
    ("MFNER", 5): {
        "twitter2017": (82.93, 0.64),
        "twitter2015": (68.60, 0.21),
        "snap": (73.87, 0.67),
        "avg": (75.13, 0.38),
    },
}

#: Episode counts the paper reports per target domain and K.
EPISODES = {
    ("twitter2017", 1): 200,
    ("twitter2015", 1): 200,
    ("snap", 1): 200,
    ("twitter2017", 5): 80,
    ("twitter2015", 5): 172,
    ("snap", 5): 111,
}

#: Tables 4 and 5 (1-shot): MFNER without image text, and with image text but no denoiser.
ABLATIONS: dict[tuple[str, int], dict[str, tuple[float, float]]] = {
    ("MFNER text only", 1): {
        "twitter2017": (80.78, 0.24),
        "twitter2015": (64.73, 0.78),
        "snap": (79.01, 0.66),
        "avg": (75.47, 0.42),
    },
    ("MFNER fixed denoiser", 1): {
        "twitter2017": (82.33, 0.47),
        "twitter2015": (66.18, 0.60),
        "snap": (79.61, 0.90),
        "avg": (76.04, 0.57),
    },
}

#: Table 6 (1-shot): the same baselines reading the tweet [SEP] its image text. The paper gives
#: no std for these rows.
TABLE6: dict[tuple[str, int], dict[str, tuple[float, float]]] = {
    ("ProtoNet text+image", 1): {
        "twitter2017": (77.56, float("nan")),
        "twitter2015": (56.08, float("nan")),
        "snap": (73.94, float("nan")),
        "avg": (69.19, float("nan")),
    },
    ("WPZ text+image", 1): {
        "twitter2017": (78.77, float("nan")),
        "twitter2015": (56.61, float("nan")),
        "snap": (74.92, float("nan")),
        "avg": (70.10, float("nan")),
    },
    ("SpanNER text+image", 1): {
        "twitter2017": (71.30, float("nan")),
        "twitter2015": (41.98, float("nan")),
        "snap": (69.92, float("nan")),
        "avg": (61.06, float("nan")),
    },
}

#: Every reported row by (our label, K).
REPORTED = TABLE3 | ABLATIONS | TABLE6

#: Our rows that run one of the paper's rows in another profile (MFNER's fast profile is MFNER).
PAPER_ROW = {
    "MFNER fast": "MFNER",
    "MFNER fast text only": "MFNER text only",
    "MFNER fast fixed denoiser": "MFNER fixed denoiser",
}


def reported(row: str, k: int) -> dict[str, tuple[float, float]]:
    """The paper's figures for one of our suite rows (whatever its encoder or precision), by target; {} if none."""
    return REPORTED.get((PAPER_ROW.get(row, row), k), {})


#: Full-data F1 published for multimodal NER on the standard splits (not the MFNER paper's: issue 13
#: names them), printed beside the ``fulldata`` suite's rows: UMT (Yu et al. 2020), ITA (Wang et al.
#: 2022), PGIM (Li et al. 2023), each with a larger encoder than MiniLM.
FULLDATA_PUBLISHED: dict[str, dict[str, float]] = {
    "UMT": {"twitter2015": 73.41, "twitter2017": 85.31},
    "ITA": {"twitter2015": 78.03, "twitter2017": 89.75},
    "PGIM": {"twitter2015": 79.33, "twitter2017": 91.43},
}

#: Few-NERD (inter, 5-way) F1 as published, beside our rows of the same methods in ``table3``: our K=1
#: beside its 1~2 shot, K=5 beside 5~10 shot. ProtoBERT (our ProtoNet), NNShot and StructShot: Ding et al.
#: (ACL 2021); CONTaiNER: Das et al. (ACL 2022), whose own episode sample may differ. Wikipedia, 66 fine
#: types, BERT-base: a published order to hold ours against, not figures to reach.
FEWNERD_INTER_5WAY: dict[tuple[str, int], float] = {
    ("ProtoNet", 1): 38.83,
    ("NNShot", 1): 47.24,
    ("StructShot", 1): 51.88,
    ("CONTaiNER", 1): 55.95,
    ("ProtoNet", 5): 58.79,
    ("NNShot", 5): 55.64,
    ("StructShot", 5): 57.32,
    ("CONTaiNER", 5): 61.83,
}
