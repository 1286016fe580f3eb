"""Reference numbers for fairflow's per-impression off-policy estimates,
computed with Open Bandit Pipeline (obp, on PyPI), and the log they are
computed on.

    python3 tests/ope/obp_reference.py log tests/ope/log.jsonl
    fairflow replay --log tests/ope/log.jsonl --out /tmp/ope-engine \
        --ope-export tests/ope/rounds-engine.json
    fairflow replay --log tests/ope/log.jsonl --out /tmp/ope-eg \
        --policy epsilon-greedy:0.3 --reward-model item --max-weight 5 \
        --ope-export tests/ope/rounds-epsilon-greedy.json
    fairflow replay --log tests/ope/log.jsonl --out /tmp/ope-pl \
        --policy plackett-luce:0.5:200 --ope-export tests/ope/rounds-plackett-luce.json
    python3 tests/ope/obp_reference.py obp tests/ope/rounds-*.json > tests/ope/obp.json

and, on the Open Bandit Dataset's sample that obp ships (docs/replay.md):

    fairflow convert --csv $OBD/random/all/all.csv --out /tmp/obd --position-base 1 \
        --propensity-column propensity_score
    fairflow replay --log /tmp/obd/traffic.jsonl --catalog /tmp/obd/catalog --out /tmp/obd-report \
        --ope-export /tmp/obd/rounds.json
    python3 tests/ope/obp_reference.py obd /tmp/obd/rounds.json

`log` writes a traffic log (docs/traffic-log.md) of requests over the demo
catalog's goods, served by an epsilon-greedy logger with marginal
propensities on sparse pages, with clicks, a few purchases and clicks that
must not join (right position, other item). It needs only the standard
library. `obp` reads the rounds fairflow exported and computes IPW, SNIPW,
DM, DR and Replay with obp's own estimators, for clicks and GMV per
impression; tests/ope_reference.rs checks fairflow's numbers against them.
obp 0.5.7 declares Python < 3.11 but runs on 3.11:
`pip install --no-deps --ignore-requires-python obp==0.5.7` and then numpy,
scipy, scikit-learn, pandas, matplotlib, seaborn, pyyaml, tqdm, torch.
"""

import json
import random
import sys

SEED = 20261204
REQUESTS = 400
CANDIDATES = 8
SLOTS = 5
ITEMS = 40
EPSILON = 0.5
LOGGED = 0.7  # the chance that a slot is in the log (sparse pages)
CATALOG = "config/demo/catalog/goods.jsonl"  # the embedded demo catalog
START = 1_795_104_000_000


def write_log(path):
    rng = random.Random(SEED)
    # Goods of distinct sellers, so the engine's per-streamer cap leaves
    # every page full.
    goods, sellers = {}, set()
    with open(CATALOG) as f:
        for line in f:
            g = json.loads(line)
            if g["seller_id"] not in sellers and len(goods) < ITEMS:
                sellers.add(g["seller_id"])
                goods[g["id"]] = g
    items = sorted(goods)
    ctr = {g: rng.uniform(0.05, 0.4) for g in items}
    logging_score = {g: rng.random() for g in items}
    lines = [{"type": "header", "format": "fairflow.traffic", "version": 2,
              "source": "tests/ope/obp_reference.py", "seed": SEED}]
    event = 0
    for r in range(REQUESTS):
        time = START + r * 1000
        request_id = f"r{r}"
        user_id = f"u{r % 97:04d}"
        candidates = rng.sample(items, CANDIDATES)
        greedy = sorted(candidates, key=lambda g: -logging_score[g])
        page = greedy if rng.random() >= EPSILON else rng.sample(candidates, CANDIDATES)
        served = []
        for k in range(SLOTS):
            if rng.random() >= LOGGED:
                continue
            g = page[k]
            p = (1 - EPSILON) * (g == greedy[k]) + EPSILON / CANDIDATES
            served.append({"item_id": g, "kind": "goods", "position": k,
                           "propensity": p, "propensity_kind": "marginal"})
        lines.append({"type": "rank", "time": time, "request_id": request_id,
                      "user_id": user_id, "scene": "mall", "slots": SLOTS,
                      "candidates": [{"item_id": g, "kind": "goods"} for g in candidates],
                      "served": served, "policy": f"epsilon-greedy {EPSILON}"})
        for s in served:
            g, k = s["item_id"], s["position"]
            event += 1
            lines.append({"type": "impression", "time": time, "event_id": f"e{event}",
                          "request_id": request_id, "user_id": user_id, "item_id": g,
                          "kind": "goods", "position": k})
            if rng.random() < ctr[g] * (1 + k) ** -0.7:
                event += 1
                lines.append({"type": "click", "time": time + 1, "event_id": f"e{event}",
                              "request_id": request_id, "user_id": user_id, "item_id": g,
                              "kind": "goods", "position": k})
                if rng.random() < 0.3:
                    event += 1
                    lines.append({"type": "purchase", "time": time + 2,
                                  "event_id": f"e{event}", "user_id": user_id,
                                  "goods_id": g, "brand_id": goods[g]["brand_id"],
                                  "seller_id": goods[g]["seller_id"],
                                  "channel": "brand_self", "price": goods[g]["price"],
                                  "venue": "shelf", "request_id": request_id,
                                  "slot_item_id": g})
            elif rng.random() < 0.05:
                # At this position, but another item: must not join.
                other = next(c for c in candidates if c != g)
                event += 1
                lines.append({"type": "click", "time": time + 1, "event_id": f"e{event}",
                              "request_id": request_id, "user_id": user_id,
                              "item_id": other, "kind": "goods", "position": k})
    with open(path, "w") as out:
        for line in lines:
            out.write(json.dumps(line, separators=(",", ":")) + "\n")


def reference(path):
    import numpy as np
    from obp.ope import (DirectMethod, DoublyRobust, InverseProbabilityWeighting,
                         ReplayMethod, SelfNormalizedInverseProbabilityWeighting)

    export = json.load(open(path))
    rounds = export["rounds"]
    n, actions = len(rounds), export["items"] + 1
    positions = max(r["position"] for r in rounds) + 1
    action = np.array([r["action"] for r in rounds])
    position = np.array([r["position"] for r in rounds])
    pscore = np.array([r["pscore"] for r in rounds])
    # obp wants a distribution at every position; only each round's own
    # position is read, so the others are uniform.
    action_dist = np.full((n, actions, positions), 1.0 / actions)
    q = {"click": np.zeros((n, actions, positions)), "gmv": np.zeros((n, actions, positions))}
    for i, r in enumerate(rounds):
        k = r["position"]
        action_dist[i, :, k] = 0.0
        q["click"][i, r["action"], k] = r["q_click_factual"]
        q["gmv"][i, r["action"], k] = r["q_gmv_factual"]
        for a, p, qc, qg in r["target"]:
            action_dist[i, a, k] += p
            q["click"][i, a, k] = qc
            q["gmv"][i, a, k] = qg
    lam = export["max_weight"]
    out = {}
    for name in ("click", "gmv"):
        reward = np.array([r[name] for r in rounds])
        common = dict(reward=reward, action=action, position=position, pscore=pscore,
                      action_dist=action_dist)
        out[name] = {
            "ipw": InverseProbabilityWeighting(lambda_=lam).estimate_policy_value(**common),
            "snipw": SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common),
            "dm": DirectMethod().estimate_policy_value(
                position=position, action_dist=action_dist,
                estimated_rewards_by_reg_model=q[name]),
            "dr": DoublyRobust(lambda_=lam).estimate_policy_value(
                **common, estimated_rewards_by_reg_model=q[name]),
            "replay": ReplayMethod().estimate_policy_value(
                reward=reward, action=action, position=position, action_dist=action_dist),
        }
        out[name] = {k: float(v) for k, v in out[name].items()}
    return out


def open_bandit_dataset(export_path):
    """The same estimators on obp's own reading of the Open Bandit Dataset's
    sample (random policy, all campaign, shipped with obp), with the target
    policy's distribution from the rounds fairflow exported after
    `fairflow convert --csv` of that sample: checks the import and the join
    against obp's loader, not only the formulas."""
    import numpy as np
    from obp.dataset import OpenBanditDataset
    from obp.ope import (DirectMethod, DoublyRobust, InverseProbabilityWeighting,
                         ReplayMethod, SelfNormalizedInverseProbabilityWeighting)

    data = OpenBanditDataset(behavior_policy="random", campaign="all")
    feedback = data.obtain_batch_bandit_feedback()
    export = json.load(open(export_path))
    rounds, names = export["rounds"], export["actions"]
    n, actions, positions = feedback["n_rounds"], feedback["n_actions"], data.len_list
    assert len(rounds) == n, (len(rounds), n)
    action_dist = np.full((n, actions, positions), 1.0 / actions)
    q = np.zeros((n, actions, positions))
    for i, r in enumerate(rounds):
        # The same impression, read by both: item, position, click, propensity.
        assert int(names[r["action"]]) == feedback["action"][i], i
        assert r["position"] == feedback["position"][i], i
        assert r["click"] == feedback["reward"][i] and r["pscore"] == feedback["pscore"][i], i
        k = r["position"]
        action_dist[i, :, k] = 0.0
        q[i, int(names[r["action"]]), k] = r["q_click_factual"]
        for a, p, qc, _ in r["target"]:
            action_dist[i, int(names[a]), k] += p
            q[i, int(names[a]), k] = qc
    common = dict(reward=feedback["reward"], action=feedback["action"],
                  position=feedback["position"], pscore=feedback["pscore"],
                  action_dist=action_dist)
    lam = export["max_weight"]
    out = {
        "ipw": InverseProbabilityWeighting(lambda_=lam).estimate_policy_value(**common),
        "snipw": SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common),
        "dm": DirectMethod().estimate_policy_value(
            position=feedback["position"], action_dist=action_dist,
            estimated_rewards_by_reg_model=q),
        "dr": DoublyRobust(lambda_=lam).estimate_policy_value(
            **common, estimated_rewards_by_reg_model=q),
        "replay": ReplayMethod().estimate_policy_value(
            reward=feedback["reward"], action=feedback["action"],
            position=feedback["position"], action_dist=action_dist),
    }
    return {"click": {k: float(v) for k, v in out.items()}}


if __name__ == "__main__":
    if sys.argv[1] == "obd":
        json.dump(open_bandit_dataset(sys.argv[2]), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    elif sys.argv[1] == "log":
        write_log(sys.argv[2])
    elif sys.argv[1] == "obp":
        result = {p.split("/")[-1]: reference(p) for p in sys.argv[2:]}
        json.dump(result, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.exit(__doc__)
