"""Needs six 1.16.0 where batchscore's own environment has another version."""

import os
import sys

import six


def init():
    global version
    version = six.__version__


def run(mini_batch):
    return [f"{os.path.basename(p)} {version} {sys.prefix}" for p in mini_batch]
