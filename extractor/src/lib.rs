//! `extractor`: DEiT ONNX features from MedMNIST `.npz` files and image folders (filled by its
//! own issue).
