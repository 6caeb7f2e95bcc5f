"""recommenders/evaluation"""
