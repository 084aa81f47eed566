"""Helpers the corpus notebooks import from their own folder: a local module, not an installed package."""
import csv

import torch


def load_points(path):
    """Features and labels from a CSV of x1,x2,label rows."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    features = torch.tensor([[float(r["x1"]), float(r["x2"])] for r in rows])
    labels = torch.tensor([int(r["label"]) for r in rows])
    return features, labels


def count_points(path):
    with open(path) as f:
        return sum(1 for _ in f) - 1  # the header is no point


def accuracy(model, features, labels):
    model.eval()
    with torch.no_grad():
        return (model(features).argmax(dim=1) == labels).float().mean().item()
