"""NCCL's constants (NCCL 2.30.7): the tuner's (src/graph/tuning.cc, ncclTunerConstantsDefaults
and ncclTopoGetAlgoTime) and the graph search's speeds (src/graph/search.cc). Unchanged; the
model that uses them is bench.costs.nccl, the search bench.costs.nccl_graph."""
from __future__ import annotations

GENERATIONS = ("volta", "ampere", "hopper", "blackwell")  # tuning.cc's compCap index
PROTOS = ("LL", "LL128", "Simple")

# tuning.cc ncclTunerConstantsDefaults.baseLatencies, us, per protocol (LL, LL128, Simple).
BASE_LAT = {"tree": (6.8, 14.0, 8.4), "ring": (6.6, 14.0, 8.4), "nvls": (0, 0, 0),
            "nvls_tree": (0, 0, 0)}
# ...hwLatencies: per hardware path (NVLink, PCI, network), algorithm and protocol, us.
HW_LAT = {
    "nvlink": {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4), "nvls": (0, 0, 25),
               "nvls_tree": (0, 0, 25)},
    "pci": {"tree": (1.0, 1.9, 4.0), "ring": (1.0, 2.5, 5.7), "nvls": (0, 0, 0),
            "nvls_tree": (0, 0, 0)},
    "net": {"tree": (5.0, 8.5, 14), "ring": (2.7, 4.0, 14.0), "nvls": (0, 0, 18),
            "nvls_tree": (0, 0, 20.9)},
}
# ...llMaxBws [compCap for one node | Intel CPU across nodes][nodes 1, 2, >2], GB/s.
LL_MAX_BW = {"volta": (39.0, 39.0, 20.4), "ampere": (87.7, 22.5, 19.0),
             "hopper": (141.0, 45.0, 35.0), "blackwell": (282.0, 90.0, 70.0)}
LL_MAX_BW_NET = (39.0, 39.0, 20.4)  # multi-node: indexed by CPU (Intel row), not by GPU
PER_CH_RING_LL128 = {"volta": (20.0,) * 3, "ampere": (20.0,) * 3, "hopper": (36.7,) * 3,
                     "blackwell": (40.0,) * 3}
PER_CH_TREE_LL128 = {"volta": (20.0,) * 3, "ampere": (20.0,) * 3, "hopper": (36.7, 36.7, 29.0),
                     "blackwell": (55.6, 31.67, 20.0)}
PER_CH_TREE = {"volta": (26.5, 18.5, 10.0), "ampere": (24.0, 23.6, 17.8),
               "hopper": (38.7, 41.4, 36.0), "blackwell": (70.0, 42.8, 24.0)}
PER_CH_NVLS_TREE = {"volta": (26.5, 18.5, 10.0), "ampere": (24.0, 23.6, 17.8),
                    "hopper": (0.0, 57.7, 45.5), "blackwell": (0.0, 96.0, 80.0)}
NVLS_EFFICIENCY = {"volta": 0.0, "ampere": 0.0, "hopper": 0.85, "blackwell": 0.74}
NET_OVERHEAD_US = 1.0  # getNetOverhead: x86 Intel (AMD: 2.0); x3 for Simple
# ncclTopoGetAlgoTime: tree all-reduce bandwidth correction by log2(bytes / 64), per protocol.
TREE_CORRECTION = (
    (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0, 1.0),
    (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0, 1.0),
    (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9, .9),
)
RING_PLATEAU = {"pre_ampere": 1.9, "ampere_on": 1.4}  # multi-node ring Simple all-reduce latency

# search.cc: the per-channel speeds (GB/s) the graph search tries, highest first, inside a node
# (speedArrayIntra) and across nodes (speedArrayInter); sm90 and sm100 have their own.
_INTRA = (40.0, 30.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0)
_INTER = (48.0, 30.0, 28.0, 24.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0,
          2.4, 1.2, 0.24, 0.12)
SPEED_INTRA = {"volta": _INTRA, "ampere": _INTRA,
               "hopper": (60.0, 50.0, 40.0, 30.0, 24.0, 20.0, 15.0, 12.0, 11.0, 6.0, 3.0),
               "blackwell": (90.0, 80.0, 70.0, 60.0, 50.0, 45.0, 40.0, 30.0, 24.0, 20.0, 19.0, 18.0)}
SPEED_INTER = {"volta": _INTER, "ampere": _INTER,
               "hopper": (48.0, 45.0, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0, 17.5, 15.0, 12.0, 6.0,
                          3.0, 2.4, 1.2, 0.24, 0.12),
               "blackwell": (96.0, 86.0, 80.0, 48.0, 45.1, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0,
                             17.5, 15.0, 12.0, 6.0, 3.0, 2.4, 1.2, 0.24, 0.12)}
MAX_GRAPH_CHANNELS = 32  # MAXCHANNELS / 2: the search's and ncclTopoDupChannels' limit
MAX_NVLS_ARITY = 32  # NCCL_MAX_NVLS_ARITY: NVLS channels = local ranks, at most this
