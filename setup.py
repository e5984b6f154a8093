"""dreamer_tf: DreamerV3 in TensorFlow/Keras (see README.md)."""
import setuptools

# Pins follow ../shared/spec/stack.md (the set measured on this machine kind).
REQUIRED = [
    'tensorflow==2.21.0',
    'tf-keras==2.21.0',
    'tensorflow-probability[tf]==0.25.0',
    'keras==3.15.1',
    'numpy>=2.0,<2.5',
    'gin-config==0.5.0',
    'absl-py==2.5.1',
    'gymnasium==1.4.0',
    'psutil>=5.9',
    'tensorboard==2.21.0',
    'tqdm>=4.66',
    'pillow>=10',
]

EXTRAS = {
    'atari': ['ale-py==0.12.1', 'opencv-python-headless==5.0.0.93',
              'pillow>=10'],
    'dmc': ['dm-control==1.0.50', 'mujoco==3.17.0'],
    'crafter': ['crafter==1.8.3'],
    # Videos of vector-only gymnasium envs (classic control, the embedded
    # default CartPole-v1) render with pygame; headless needs no display.
    # pygame-ce, the fork gymnasium 1.4's own classic-control extra
    # requires: `pygame` next to it would overwrite the same module.
    'render': ['pygame-ce==2.5.8'],
    'plots': ['matplotlib>=3.8'],
    # pytest-xdist: the README's test command runs the suite on every core.
    'test': ['pytest>=8', 'pytest-xdist>=3.5', 'scipy'],
    # bsuite's DeepSea, the reference tests/envs/test_deepsea.py compares
    # envs/deepsea.py with step by step (dreamer_tf runs without it). Not
    # in 'all': it pulls in pandas, plotnine, statsmodels, scikit-image.
    'bsuite': ['bsuite==0.3.6'],
}
EXTRAS['all'] = sorted({p for name, deps in EXTRAS.items()
                        if name != 'bsuite' for p in deps})

setuptools.setup(
    name='dreamer_tf',
    version='0.1.0',
    description='DreamerV3 reimplemented in TensorFlow/Keras with TFP.',
    packages=setuptools.find_packages(include=[
        'dreamer_tf', 'dreamer_tf.*', 'launch', 'launch.*', 'gin_configs',
        'gin_configs.*']),
    package_data={'gin_configs': ['*.gin', '*/*.gin']},
    python_requires='>=3.10',
    install_requires=REQUIRED,
    extras_require=EXTRAS,
)
