"""How far phantom renders are from real films: image statistics and a discriminator.

    .venv/bin/python benchmarks/realism.py --real ../shared/real-cxr-samples --n 48 \
        [--json DATASET/realism.json] [--grid docs/realism_grid.png]

Renders `n` phantom films (random findings from the bundled ontology's drawable concepts, like a
dataset) and reads the real PNGs (resized to 256²). Prints per-set medians of simple statistics
(grain = std of the residual after a 3x3 mean; neighbour-pixel |dx|; left-right symmetry;
thumbnail correlation between images; gradient magnitude) and the leave-one-out accuracy of a
logistic regression on those statistics plus a 16-bin histogram, and its ROC AUC from
leave-one-out probabilities (0.5 = indistinguishable, 1.0 = always told apart; lower is better).
`--json` writes the figures where the dataset card looks for them (`<dataset>/realism.json`);
`--grid` saves 8 real films above 8 renders. The real images are only read, never copied.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

SIZE = 256


def features(img: np.ndarray) -> np.ndarray:
    im = img.astype(float)
    c = im[64:192, 64:192]
    grain = (c - ndimage.uniform_filter(c, 3)).std()
    dx = np.median(np.abs(np.diff(c, axis=1)))
    sym = np.corrcoef(im[:, : SIZE // 2].ravel(), im[:, ::-1][:, : SIZE // 2].ravel())[0, 1]
    grad = np.hypot(*np.gradient(ndimage.gaussian_filter(im, 1.0))).mean()
    hist = np.histogram(im, bins=16, range=(0, 256))[0] / im.size
    return np.array([grain, dx, sym, grad, im.mean(), im.std(), *hist])


def thumb_corr(images: list[np.ndarray]) -> float:
    th = [np.asarray(Image.fromarray(i).resize((32, 32)), float).ravel() for i in images]
    c = np.corrcoef(np.array(th))
    return float(np.median(c[np.triu_indices(len(th), 1)]))


def phantom_films(n: int, seed: int) -> list[np.ndarray]:
    from syncxr.image.phantom import FindingSpec, render_phantom
    from syncxr.image.phantom.generator import entities_to_specs
    from syncxr.records import Entity
    from syncxr.vocab import load_ontology

    onto = load_ontology()
    drawable = [c for c in onto.concepts if c.render]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        picks = rng.choice(len(drawable), size=int(rng.integers(0, 3)), replace=False)
        ents = [Entity(drawable[int(k)].name, drawable[int(k)].type) for k in picks]
        specs: list[FindingSpec] = entities_to_specs(ents, onto)
        out.append(render_phantom(specs, seed=seed * 100_000 + i, size=SIZE).image)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, required=True, help="folder of real frontal CXR PNGs")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the figures here (e.g. <dataset>/realism.json)")
    ap.add_argument("--grid", type=Path, help="save real films above renders as one PNG")
    args = ap.parse_args()
    real = [np.asarray(Image.open(p).convert("L").resize((SIZE, SIZE))) for p in sorted(args.real.glob("*.png"))]
    fake = phantom_films(args.n, args.seed)
    names = ["grain", "median |dx|", "left-right symmetry", "gradient", "mean", "std"]
    fr, ff = np.array([features(i) for i in real]), np.array([features(i) for i in fake])
    print(f"{'statistic':24s} {'real':>8s} {'phantom':>8s}")
    for k, name in enumerate(names):
        print(f"{name:24s} {np.median(fr[:, k]):8.2f} {np.median(ff[:, k]):8.2f}")
    print(f"{'thumbnail correlation':24s} {thumb_corr(real):8.2f} {thumb_corr(fake):8.2f}")
    acc, auc = discriminate(fr, ff)
    print(f"{'discriminator accuracy':24s} {acc:8.2f}   (leave-one-out, 0.5 = cannot tell them apart)")
    print(f"{'discriminator AUC':24s} {auc:8.2f}   (leave-one-out probabilities; lower is better)")
    if args.json:
        from syncxr.image.phantom.render import VERSION

        out = {
            "discriminator_auc": round(auc, 4), "discriminator_accuracy": round(acc, 4),
            "real_images": len(real), "renders": len(fake), "renderer": VERSION,
            "statistics": {name: {"real": float(np.median(fr[:, k])), "phantom": float(np.median(ff[:, k]))}
                           for k, name in enumerate(names)},
            "command": "python benchmarks/realism.py --real <folder of real frontal CXR PNGs> "
                       f"--n {args.n} --seed {args.seed} --json <dataset>/realism.json",
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
        if (args.json.parent / "manifest.json").is_file():  # a dataset folder: refresh its card
            from syncxr.report.card import write_card

            print("card:", *write_card(args.json.parent))
    if args.grid:
        save_grid(args.grid, real[:8], args.seed)
        print(f"wrote {args.grid} (top: real films; bottom: renders of varied findings, named)")


# A varied sample for the grid: (concept, laterality) per film.
GRID_SETS = (
    [("pleural_effusion", "right")], [("cardiomegaly", None), ("pacemaker", None)],
    [("pneumothorax", "left")], [("consolidation", "right"), ("et_tube", None), ("ng_tube", None)],
    [("mass", "left")], [("pulmonary_edema", None), ("central_line", "right")],
    [("hydropneumothorax", "right")], [("emphysema", None), ("picc_line", "left")],
)


def save_grid(path: Path, real: list[np.ndarray], seed: int) -> None:
    """Real films above renders of GRID_SETS, each render captioned with what it shows."""
    from PIL import ImageDraw

    from syncxr.image.phantom import render_phantom
    from syncxr.image.phantom.generator import entities_to_specs
    from syncxr.records import Entity
    from syncxr.vocab import load_ontology

    onto = load_ontology()
    tiles = []
    for i, picks in enumerate(GRID_SETS):
        ents = [Entity(n, onto.concept(n).type, attributes={"laterality": s} if s else {}) for n, s in picks]
        img = Image.fromarray(render_phantom(entities_to_specs(ents, onto), seed=seed * 1000 + i, size=SIZE).image).convert("RGB")
        draw = ImageDraw.Draw(img)
        for k, (n, s) in enumerate(picks):
            draw.text((4, SIZE - 12 * (len(picks) - k) - 2), f"{n}{' ' + s if s else ''}", fill=(255, 200, 0))
        tiles.append(np.asarray(img))
    top = np.hstack([np.stack([r] * 3, axis=-1) for r in real])
    Image.fromarray(np.vstack([top, np.hstack(tiles)])).save(path)


def discriminate(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """(leave-one-out accuracy, ROC AUC of the leave-one-out probabilities) of a logistic
    regression telling real (1) from rendered (0) feature rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([real, fake])
    y = np.r_[np.ones(len(real)), np.zeros(len(fake))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    prob = cross_val_predict(clf, x, y, cv=LeaveOneOut(), method="predict_proba")[:, 1]
    return float(((prob > 0.5) == y).mean()), float(roc_auc_score(y, prob))


if __name__ == "__main__":
    main()
