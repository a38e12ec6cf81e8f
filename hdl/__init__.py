"""convc.hdl"""
