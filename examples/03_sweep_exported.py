#!/usr/bin/env python
"""03_sweep_exported.py: the notebook 03_sweep.ipynb, exported by `pykernel-ext export`.

Run it with `python 03_sweep_exported.py [--NAME VALUE ...]`: `--help` lists the notebook's
parameters; those not given keep the notebook's values; `-f FILE` reads values from YAML or JSON.
Tracked cells record the same runs as in the notebook (`pykernel-ext runs list`). Edit the notebook
and export it again rather than editing this file:

    pykernel-ext export examples/03_sweep.ipynb -o examples/03_sweep_exported.py
"""
import argparse

import pykernel_ext
from pykernel_ext import export as _export


def _parse_parameters(argv=None):
    """The parameters given on the command line or in -f FILE (the rest keep the notebook's values)."""
    parser = argparse.ArgumentParser(description="03_sweep.ipynb as a script.",
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("-f", "--params-file", dest="_params_file", metavar="FILE",
                        help="YAML or JSON mapping of parameter values (options given here win)")
    parser.add_argument("--lr", type=float, metavar="FLOAT", help="learning rate of Adam (default: 0.05)")
    parser.add_argument("--hidden", type=int, metavar="INT", help="width of the hidden layer (default: 16)")
    parser.add_argument("--epochs", type=int, metavar="INT", help="passes over the data (default: 15)")
    parser.add_argument("--seed", type=int, metavar="INT", help="random seed of data and weights (default: 0)")
    return _export.parse_parameters(parser, argv)


# What `pykernel-ext run` records for the notebook (its code, its parameters' literal defaults): the
# script's own run records the same, so `pykernel-ext runs diff` compares the two as equals.
_NOTEBOOK = "03_sweep.ipynb"
_NOTEBOOK_DEFAULTS = {'lr': 0.05, 'hidden': 16, 'epochs': 15, 'seed': 0}
_NOTEBOOK_CODE = """\
# %% ---- code cell 1
%load_ext pykernel_ext
import pykernel_ext
import torch
from torch import nn
# %% ---- code cell 2 [parameters]
lr = 0.05  # learning rate of Adam
hidden = 16  # width of the hidden layer
epochs = 15  # passes over the data
seed = 0  # random seed of data and weights
# %% ---- code cell 3
torch.manual_seed(seed)
X = torch.randn(256, 4)
y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).long()  # a nonlinear rule the network must learn
# %% ---- code cell 4
def make_model(width):
    return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 2))
# %% ---- code cell 5
%%track --name sweep-train --metrics accuracy
model = make_model(hidden)
optimizer = torch.optim.Adam(model.parameters(), lr=lr)
for epoch in range(epochs):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(X), y)
    loss.backward()
    optimizer.step()
    pykernel_ext.log(loss=loss.item(), step=epoch)
accuracy = (model(X).argmax(dim=1) == y).float().mean().item()
print(f"lr={lr} hidden={hidden}: accuracy {accuracy:.3f}")
"""


# The notebook's code runs only when this file is run as a script: worker processes (Dask's
# for %%remote, multiprocessing's) import it again and must not rerun it.
if __name__ == "__main__":
    _PARAMETERS = _parse_parameters()
    with _export.notebook_run(_NOTEBOOK, _NOTEBOOK_CODE, {**_NOTEBOOK_DEFAULTS, **_PARAMETERS}):

        # # A parameter sweep
        #
        # Run it as a batch of tracked runs, in parallel on the embedded Dask cluster:
        #
        # ```bash
        # pykernel-ext run examples/03_sweep.ipynb --sweep lr=0.01,0.05 --sweep hidden=8,32 --parallel 2
        # ```
        #
        # Each parameter set is a run of kind `notebook`; the `%%track` cell inside is its child. `03_sweep_exported.py`
        # beside it is this notebook exported by `pykernel-ext export`: `python 03_sweep_exported.py --lr 0.05`.

        # ---- cell 2
        # %load_ext pykernel_ext: not needed, the script imports pykernel_ext
        import pykernel_ext
        import torch
        from torch import nn

        # ---- cell 3 [parameters]
        lr = 0.05  # learning rate of Adam
        hidden = 16  # width of the hidden layer
        epochs = 15  # passes over the data
        seed = 0  # random seed of data and weights
        globals().update(_PARAMETERS)  # the options given replace the defaults above

        # ---- cell 4
        torch.manual_seed(seed)
        X = torch.randn(256, 4)
        y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).long()  # a nonlinear rule the network must learn

        # ---- cell 5
        def make_model(width):
            return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 2))

        # ---- cell 6: %%track --name sweep-train --metrics accuracy
        with pykernel_ext.track(name='sweep-train', metrics=['accuracy']):
            model = make_model(hidden)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            for epoch in range(epochs):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(X), y)
                loss.backward()
                optimizer.step()
                pykernel_ext.log(loss=loss.item(), step=epoch)
            accuracy = (model(X).argmax(dim=1) == y).float().mean().item()
            print(f"lr={lr} hidden={hidden}: accuracy {accuracy:.3f}")
