"""Models: the model-directory runtime without torch (runtime), the torch training and export tools
(training), the shipped model directories (zoo/) and the published network's weights (pretrained/)."""
